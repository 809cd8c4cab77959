// rackd — a named OS thread for a loop that blocks in poll(2) (the data plane, the control socket), so it
// never occupies a slot in Swift's cooperative pool. pthreads directly: Foundation's Thread would link all
// of Foundation, ICU included, into rackd.

#if canImport(Glibc)
import Glibc
#endif

/// glibc declares pthread_setname_np only under _GNU_SOURCE, which Swift's Glibc module is not built with.
@_silgen_name("pthread_setname_np")
private func setThreadName(_ thread: pthread_t, _ name: UnsafePointer<CChar>) -> CInt

enum DedicatedThread {
    /// Runs `body` on a new detached thread called `name` (at most 15 characters show in ps and top).
    static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable {
            let name: String
            let body: @Sendable () -> Void
            init(name: String, body: @escaping @Sendable () -> Void) {
                self.name = name
                self.body = body
            }
        }
        let box = Unmanaged.passRetained(Box(name: name, body: body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
            _ = setThreadName(pthread_self(), String(box.name.prefix(15)))
            box.body()
            return nil
        }, box)
        // Without a thread rackd cannot run at all; there is nothing sensible to fall back to.
        precondition(result == 0, "pthread_create(\(name)) failed: \(result)")
        pthread_detach(thread)
    }
}
