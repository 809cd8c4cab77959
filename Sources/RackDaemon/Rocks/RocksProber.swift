// rackd — runs the rocks EDP probes the engine asks for (`EngineOutput.probes`, docs/rocks.md §2.2), inside
// the data-plane loop: no thread, no blocking call.
//
// Each probe is a TCP socket of its own, made the way a rock makes its probe, so that the kernel puts
// exactly a rock's packets on the wire (SYN, ACK, FIN with no data):
// - non-blocking, with SO_MARK = rackd's firewall mark: rackd's rules accept marked packets before any
//   queue rule (Firewall/RackdRuleset.swift), so the probe's own SYN is not queued back to rackd;
// - bound to the application's source address, port 0 (a fresh ephemeral port, as a rock's probe has);
// - connect(2), then shutdown(SHUT_WR) once connected: a FIN and not a byte of data;
// - reads until EOF or a reset, keeping the last 16 bytes; then a plain close(2).
// What the socket reports, and when, goes to a RocksProbeJudge (RocksProbeJudge.swift), which holds the
// timeouts and decides the outcome. The loop polls `pollDescriptors`, folds `nextDeadline` into its
// timeout and calls `service` after every poll. At most `concurrency` probes run at once; the rest wait
// their turn in order.

import CLinuxNetlink
import Logging
import RackEngine
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A probe that finished.
public struct RocksProbeCompletion: Sendable {
    public var request: RocksProbeRequest
    public var outcome: RocksProbeOutcome
    /// Bytes the destination sent before it closed, reset or went quiet.
    public var bytesReceived: Int
    /// The probe's own endpoint, once bound.
    public var local: TCPEndpoint?
    /// From the start of the probe (not of its wait for a free slot) to its end.
    public var duration: Duration
}

public final class RocksProber {
    /// Probes running at once: each holds a socket and an ephemeral port for up to 10 s.
    public static let defaultConcurrency = 64
    /// Probes waiting for a slot; past it a probe is answered "not a rock" at once (its SYN goes out
    /// unprobed) rather than let the queue grow without bound.
    static let maximumWaiting = 4096
    /// Reads per probe per wake-up, so one fast sender cannot hold up the loop.
    private static let readsPerWakeUp = 16

    private let firewallMark: UInt32
    private let concurrency: Int
    private let logger: Logger

    private struct Run {
        var request: RocksProbeRequest
        var judge: RocksProbeJudge
        var local: TCPEndpoint?
    }

    /// Running probes by socket descriptor.
    private var running: [CInt: Run] = [:]
    private var waiting: [RocksProbeRequest] = []
    private var waitingHead = 0
    private var finished: [RocksProbeCompletion] = []
    private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)

    public init(firewallMark: UInt32, concurrency: Int = RocksProber.defaultConcurrency, logger: Logger) {
        self.firewallMark = firewallMark
        self.concurrency = max(1, concurrency)
        self.logger = logger
    }

    deinit {
        cancelAll()
        readBuffer.deallocate()
    }

    /// Probes running or waiting.
    public var count: Int { running.count + waiting.count - waitingHead }

    /// Starts `request` now if a slot is free, else queues it. A probe that fails at once (no socket, an
    /// address that cannot be bound) is reported by the next `service`.
    public func start(_ request: RocksProbeRequest, now: EngineInstant) {
        if running.count < concurrency {
            open(request, now: now)
        } else if waiting.count - waitingHead < Self.maximumWaiting {
            waiting.append(request)
        } else {
            finished.append(RocksProbeCompletion(
                request: request, outcome: .notRock(reason: "not probed: \(Self.maximumWaiting) probes already waiting"),
                bytesReceived: 0, local: nil, duration: .zero))
        }
    }

    /// The descriptors to poll: POLLOUT while connecting, POLLIN while reading.
    public var pollDescriptors: [pollfd] {
        running.map { descriptor, run in
            pollfd(fd: descriptor, events: Int16(run.judge.phase == .connecting ? POLLOUT : POLLIN), revents: 0)
        }
    }

    /// When `service` next has work with nothing polled ready: the earliest probe deadline, or at once if
    /// a probe finished already.
    public var nextDeadline: EngineInstant? {
        if !finished.isEmpty { return EngineInstant(nanoseconds: 0) }
        return running.values.map(\.judge.deadline).min()
    }

    /// Advances every probe that `polled` (as filled by poll(2); other descriptors are ignored) shows
    /// ready, ends those whose deadline passed, starts waiting ones in the slots that freed, and returns
    /// the probes that finished.
    public func service(_ polled: some Sequence<pollfd>, now: EngineInstant) -> [RocksProbeCompletion] {
        for entry in polled where entry.revents != 0 && running[entry.fd] != nil {
            advance(entry.fd, now: now)
        }
        for (descriptor, run) in running {
            if let outcome = run.judge.timedOut(now: now) { finish(descriptor, outcome, now: now) }
        }
        while running.count < concurrency, waitingHead < waiting.count {
            let request = waiting[waitingHead]
            waitingHead += 1
            open(request, now: now)
        }
        if waitingHead == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            waitingHead = 0
        }
        defer { finished.removeAll(keepingCapacity: true) }
        return finished
    }

    /// Closes every probe and forgets the waiting ones, reporting none (at shutdown).
    public func cancelAll() {
        for descriptor in running.keys { close(descriptor) }
        running.removeAll()
        waiting.removeAll()
        waitingHead = 0
        finished.removeAll()
    }

    // MARK: One probe

    private func open(_ request: RocksProbeRequest, now: EngineInstant) {
        let judge = RocksProbeJudge(readTimeout: request.readTimeout, startedAt: now)
        let destination = SocketAddress(request.destination)
        let source = SocketAddress(TCPEndpoint(address: request.source, port: 0))
        guard source.family == destination.family else {
            finished.append(RocksProbeCompletion(
                request: request, outcome: .notRock(reason: "could not start the probe: source \(request.source) and "
                    + "destination \(request.destination.address) are of different address families (a bug in rackd)"),
                bytesReceived: 0, local: nil, duration: .zero))
            return
        }
        let descriptor: CInt
        do {
            descriptor = try syscall("socket(probe)") {
                socket(destination.family, CLNL_SOCK_STREAM | CLNL_SOCK_NONBLOCK | CLNL_SOCK_CLOEXEC,
                       CInt(CLNL_IPPROTO_TCP))
            }
        } catch {
            finished.append(RocksProbeCompletion(request: request, outcome: RocksProbeJudge.couldNotStart(error),
                                                 bytesReceived: 0, local: nil, duration: .zero))
            return
        }
        running[descriptor] = Run(request: request, judge: judge)
        do {
            var mark = firewallMark
            try syscall("setsockopt(probe, SO_MARK)") {
                setsockopt(descriptor, SOL_SOCKET, SO_MARK, &mark, socklen_t(MemoryLayout<UInt32>.size))
            }
            try syscall("bind(probe, \(request.source))") { source.withSockaddr { bind(descriptor, $0, $1) } }
            running[descriptor]?.local = try? SocketAddress.localEndpoint(of: descriptor, call: "getsockname(probe)")
        } catch {
            finish(descriptor, RocksProbeJudge.couldNotStart(error), now: now)
            return
        }
        logger.debug("rocks probe started", metadata: [
            "rocks.destination": "\(request.destination)", "rocks.source": "\(running[descriptor]?.local.map { "\($0)" } ?? "?")",
        ])
        let result = destination.withSockaddr { connect(descriptor, $0, $1) }
        if result == 0 {
            connected(descriptor, now: now)
        } else {
            let code = Errno(rawValue: Glibc.errno)
            if code != .nowInProgress && code != .interrupted {
                finish(descriptor, judge.failed(code), now: now)
            }
        }
    }

    private func advance(_ descriptor: CInt, now: EngineInstant) {
        guard let run = running[descriptor] else { return }
        switch run.judge.phase {
        case .connecting:
            var error: CInt = 0
            var length = socklen_t(MemoryLayout<CInt>.size)
            if getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length) != 0 { error = Glibc.errno }
            if error != 0 {
                finish(descriptor, run.judge.failed(Errno(rawValue: error)), now: now)
            } else {
                connected(descriptor, now: now)
            }
        case .reading:
            read(descriptor, now: now)
        }
    }

    /// The connection is made: send the FIN (no data), then see whether anything came already.
    private func connected(_ descriptor: CInt, now: EngineInstant) {
        running[descriptor]?.judge.connected(now: now)
        // Bound to an unspecified address, the socket has its real one only now.
        if let local = try? SocketAddress.localEndpoint(of: descriptor, call: "getsockname(probe)") {
            running[descriptor]?.local = local
        }
        if shutdown(descriptor, CInt(SHUT_WR)) != 0 {
            // The connection is already gone (ENOTCONN after a reset): the read below says how.
            logger.debug("rocks probe: shutdown(SHUT_WR) failed", metadata: ["error": "\(Errno(rawValue: Glibc.errno))"])
        }
        read(descriptor, now: now)
    }

    private func read(_ descriptor: CInt, now: EngineInstant) {
        for _ in 0..<Self.readsPerWakeUp {
            let count = recv(descriptor, readBuffer.baseAddress, readBuffer.count, 0)
            guard let run = running[descriptor] else { return }
            if count > 0 {
                running[descriptor]?.judge.received(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]), now: now)
            } else if count == 0 {
                finish(descriptor, run.judge.endOfStream(), now: now)
                return
            } else {
                let code = Errno(rawValue: Glibc.errno)
                if code == .interrupted { continue }
                if code == .wouldBlock { return }
                finish(descriptor, run.judge.failed(code), now: now)
                return
            }
        }
    }

    private func finish(_ descriptor: CInt, _ outcome: RocksProbeOutcome, now: EngineInstant) {
        guard let run = running.removeValue(forKey: descriptor) else { return }
        close(descriptor)
        let completion = RocksProbeCompletion(
            request: run.request, outcome: outcome, bytesReceived: run.judge.bytesReceived, local: run.local,
            duration: now.duration(since: run.judge.startedAt))
        logger.debug("rocks probe finished", metadata: [
            "rocks.destination": "\(run.request.destination)", "rocks.outcome": "\(outcome)",
            "rocks.probe-time": "\(RocksProbeJudge.text(completion.duration))",
        ])
        finished.append(completion)
    }
}
