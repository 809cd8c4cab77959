// rackd — the libFuzzer target for FuzzBodies.controlRequests: a local client's bytes on the control
// socket through the line reader and the request decoding (Fuzz/run builds it with -D FUZZING); without
// libFuzzer the same binary replays the inputs named on its command line (FuzzMain).

import RackFuzzing

@main
struct FuzzTarget {
    static func main() { FuzzMain.run(FuzzBodies.controlRequests) }
}
