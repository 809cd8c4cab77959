// rackd — runs the data plane on its own thread as a ServiceLifecycle service.
//
// The loop blocks in poll(2), so it gets a thread of its own rather than a slot in Swift's cooperative
// pool. A graceful shutdown (SIGTERM, SIGINT) or cancellation asks the loop to stop and waits for it to
// remove the rules and give every queued packet its verdict.

import ServiceLifecycle

public struct DataPlaneService: Service {
    let dataPlane: DataPlane

    public init(dataPlane: DataPlane) {
        self.dataPlane = dataPlane
    }

    public func run() async throws {
        let dataPlane = self.dataPlane
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                    DedicatedThread.start(name: "rackd-dataplane") {
                        do {
                            try dataPlane.run()
                            continuation.resume()
                        } catch {
                            continuation.resume(throwing: error)
                        }
                    }
                }
            } onGracefulShutdown: {
                dataPlane.requestStop()
            }
        } onCancel: {
            dataPlane.requestStop()
        }
    }
}
