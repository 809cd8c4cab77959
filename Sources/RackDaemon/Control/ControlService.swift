// rackd — runs the control server on its own thread as a ServiceLifecycle service, beside the data
// plane. Its one loop serves every client and blocks in poll(2) between events, so it takes a thread
// rather than a slot in Swift's pool.

import ServiceLifecycle

/// Runs the control server on its own thread as a ServiceLifecycle service.
public struct ControlService: Service {
    let server: ControlServer

    public init(server: ControlServer) {
        self.server = server
    }

    public func run() async throws {
        let server = self.server
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    DedicatedThread.start(name: "rackd-control") {
                        server.run()
                        continuation.resume()
                    }
                }
            } onGracefulShutdown: {
                server.requestStop()
            }
        } onCancel: {
            server.requestStop()
        }
    }
}
