// rackd — the libFuzzer target for the kernel message decoders of RackDaemon (Decoding/): a netlink
// datagram walked into messages and attributes, each message decoded as an inet_diag reply, an rtnetlink
// link or address message (applied to an interface table), an NFQUEUE packet message and an nf_tables
// notification (also read by a ruleset watch). The kernel is trusted, but a decoder must never trap whatever
// it is given. Fuzz/run builds it with -D FUZZING; without libFuzzer the same binary replays the inputs named
// on its command line (FuzzMain).

import RackDaemon
import RackFuzzing

@main
struct FuzzTarget {
    static func main() { FuzzMain.run(KernelMessagesFuzzBody.run) }
}
