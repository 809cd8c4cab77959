// rackd — the libFuzzer target for the kernel message decoders of RackDaemon (Decoding/): a netlink
// datagram walked into messages and attributes, each message decoded as an inet_diag reply, an rtnetlink
// link or address message (applied to an interface table) and an NFQUEUE packet message. The kernel is
// trusted, but a decoder must never trap whatever it is given. Built with -D FUZZING by Fuzz/run, main hands
// control to libFuzzer's driver; without it, the same binary replays the inputs named on its command line.

import RackDaemon
import RackFuzzing

@main
struct FuzzTarget {
    static func main() {
        #if FUZZING
        exit(FuzzDriver.run { KernelMessagesFuzzBody.run($0) })
        #else
        exit(FuzzReplay.main(KernelMessagesFuzzBody.run, arguments: CommandLine.arguments))
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif
