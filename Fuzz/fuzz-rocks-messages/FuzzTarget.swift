// rackd — the libFuzzer target for FuzzBodies.rocksMessages. Built with -D FUZZING by Fuzz/run, main hands
// control to libFuzzer's driver; without it, the same binary replays the inputs named on its command line.

import RackFuzzing

@main
struct FuzzTarget {
    static func main() {
        #if FUZZING
        exit(FuzzDriver.run { FuzzBodies.rocksMessages($0) })
        #else
        exit(FuzzReplay.main(FuzzBodies.rocksMessages, arguments: CommandLine.arguments))
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif
