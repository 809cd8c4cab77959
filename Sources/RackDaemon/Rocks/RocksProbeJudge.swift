// rackd — what one rocks EDP probe has seen, and what it concludes (docs/rocks.md §2.2). Pure: the
// prober (RocksProber.swift) feeds it what its socket reported, with the time, and asks it when to give
// up and what the outcome is.
//
// A rock answers a probe (a connection that sent a FIN and no data) with the 16-byte announcement, after
// any banner its application wrote, and then closes. So the probe keeps only the last 16 bytes it read,
// and at EOF or a reset compares them with the announcement: anything else is not a rock. Each read waits
// at most the read timeout (rocks: 500 ms) after the last progress.
//
// rocks itself has no connect timeout and no overall limit. rackd has both, because an application's SYN
// is held while its destination is probed (docs/rocks.md §14):
// - connect, 3 s: the probe's SYN and its retransmission at 1 s (the kernel's initial RTO) went
//   unanswered, so the application's own SYN would not be answered either. It is released to meet the
//   same fate on the application's own schedule instead of waiting for the kernel to give up (about
//   2 minutes with tcp_syn_retries = 6). A destination that slow is not a rock worth the delay;
// - overall, 10 s: a server that trickles bytes, each within the read timeout, never ends the probe by
//   itself. 10 s keeps the held SYN's delay within what a connecting application already tolerates from
//   a lost SYN (its first retransmissions come at 1, 3 and 7 s).

import RackEngine
import SystemPackage

struct RocksProbeJudge {
    static let connectTimeout: Duration = .seconds(3)
    static let overallLimit: Duration = .seconds(10)

    enum Phase: Equatable {
        /// connect(2) is under way.
        case connecting
        /// Connected, FIN sent: reading until EOF.
        case reading
    }

    let readTimeout: Duration
    let startedAt: EngineInstant
    private(set) var phase: Phase = .connecting
    /// The last bytes received, at most as many as the announcement has.
    private(set) var tail: [UInt8] = []
    private(set) var bytesReceived = 0
    /// When the connection was made or data last arrived: the read timeout runs from here.
    private var lastProgress: EngineInstant

    init(readTimeout: Duration, startedAt: EngineInstant) {
        self.readTimeout = readTimeout
        self.startedAt = startedAt
        self.lastProgress = startedAt
    }

    /// When the probe gives up if nothing else happens first; `timedOut` says why.
    var deadline: EngineInstant {
        let overall = startedAt + Self.overallLimit
        switch phase {
        case .connecting: return min(startedAt + Self.connectTimeout, overall)
        case .reading: return min(lastProgress + readTimeout, overall)
        }
    }

    /// The connection is made (and the FIN sent).
    mutating func connected(now: EngineInstant) {
        phase = .reading
        lastProgress = now
    }

    /// Bytes arrived; only the last 16 matter.
    mutating func received(_ bytes: some Collection<UInt8>, now: EngineInstant) {
        guard !bytes.isEmpty else { return }
        bytesReceived += bytes.count
        tail.append(contentsOf: bytes.suffix(RocksAnnouncement.bytes.count))
        if tail.count > RocksAnnouncement.bytes.count { tail.removeFirst(tail.count - RocksAnnouncement.bytes.count) }
        lastProgress = now
    }

    /// The peer closed (a read returned 0).
    func endOfStream() -> RocksProbeOutcome {
        RocksAnnouncement.endsProbeAnswer(tail) ? .rock : .notRock(reason: "EOF after \(bytes) without the announcement")
    }

    /// The peer reset the connection after it was made.
    func reset() -> RocksProbeOutcome {
        RocksAnnouncement.endsProbeAnswer(tail) ? .rock : .notRock(reason: "reset after \(bytes) without the announcement")
    }

    /// connect(2), or a read, failed with `errno` (ECONNRESET while reading is `reset`).
    func failed(_ errno: Errno) -> RocksProbeOutcome {
        switch (phase, errno) {
        case (.reading, .connectionReset): return reset()
        case (.connecting, .connectionRefused): return .notRock(reason: "connection refused")
        case (.connecting, .timedOut): return .notRock(reason: "connect timed out")
        case (.connecting, _): return .notRock(reason: "connect failed: \(errno)")
        case (.reading, _): return .notRock(reason: "read failed after \(bytes): \(errno)")
        }
    }

    /// The probe could not even start (socket, SO_MARK, bind or connect refused locally).
    static func couldNotStart(_ error: SystemError) -> RocksProbeOutcome {
        .notRock(reason: "could not start the probe: \(error)")
    }

    /// `deadline` passed at `now` with nothing else happening: the outcome, or nil if it has not passed.
    func timedOut(now: EngineInstant) -> RocksProbeOutcome? {
        guard now >= deadline else { return nil }
        if now >= startedAt + Self.overallLimit {
            return .notRock(reason: "no EOF within \(Self.text(Self.overallLimit)) (\(bytes) received)")
        }
        switch phase {
        case .connecting:
            return .notRock(reason: "connect timed out after \(Self.text(Self.connectTimeout))")
        case .reading:
            let after = bytesReceived == 0 ? "" : " after \(bytes)"
            return .notRock(reason: "no data for \(Self.text(readTimeout))\(after)")
        }
    }

    private var bytes: String { bytesReceived == 1 ? "1 byte" : "\(bytesReceived) bytes" }

    /// "500 ms", "3 s".
    static func text(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if attoseconds == 0 { return "\(seconds) s" }
        return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000) ms"
    }
}
