// rackd — starts libFuzzer from a Swift main.
//
// SwiftPM gives every executable its own renamed entry point, so a fuzz binary cannot leave `main` to
// libFuzzer. Instead main calls libFuzzer's documented driver entry, LLVMFuzzerRunDriver, with the
// target's body. Only built into fuzz binaries (-D FUZZING); the symbol comes with -sanitize=fuzzer.

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// The body the C callback calls; set once, before the driver starts.
nonisolated(unsafe) private var currentBody: ((UnsafeRawBufferPointer) -> Void)?

public enum FuzzDriver {
    public static func run(_ body: @escaping (UnsafeRawBufferPointer) -> Void) -> Int32 {
        currentBody = body
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            currentBody?(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        }
    }
}
#endif

/// What every fuzz target's `main` does: built with -D FUZZING (Fuzz/run), hand `body` to libFuzzer;
/// otherwise replay the inputs named on the command line through it. Exits with the result.
public enum FuzzMain {
    public static func run(_ body: @escaping (UnsafeRawBufferPointer) -> Void) -> Never {
        #if FUZZING
        exit(FuzzDriver.run(body))
        #else
        exit(FuzzReplay.main(body, arguments: CommandLine.arguments))
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif
