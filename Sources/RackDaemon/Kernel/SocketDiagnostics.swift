// rackd — the kernel's view of local TCP sockets, read over sock_diag (inet_diag), as engine snapshots.
//
// rackd keeps healthy connections out of the queue (docs/architecture.md, "Kernel facts": liveness), so it
// reads their progress from the sockets themselves, with INET_DIAG_INFO (struct tcp_info). The sockets the
// engine asks about are read one request each, many requests to a datagram (Decoding/InetDiagRequest.swift),
// so a reading costs what it reads, not every socket of the host ("Liveness at scale"); what those
// requests do not find is looked for once more in a dump, before the engine hears that it is gone. Each
// socket becomes a `SocketSnapshot`, decoded by Decoding/InetDiagMessage.swift, which also says what the
// counters mean. It decides nothing.

import CLinuxNetlink
import RackEngine
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Dumps local TCP sockets over NETLINK_SOCK_DIAG.
public final class SocketDiagnostics {
    /// The states dumped unless others are asked for: every state whose sockets carry `tcp_info`, except
    /// LISTEN. TIME_WAIT and NEW_SYN_RECV sockets are mini-sockets without `tcp_info`; asking for them costs
    /// dump time and yields nothing.
    public static let defaultStates: Set<SocketSnapshot.State> = [
        .established, .synSent, .synReceived, .finWait1, .finWait2, .close, .closeWait, .lastAck, .closing,
    ]

    /// The `idiag_states` bit mask.
    private let stateMask: UInt32
    /// Opened lazily again after a failed dump, whose rest may still be queued on the old socket.
    private var socket: NetlinkSocket?

    /// Opens the socket. LISTEN sockets are never reported, even when `states` names them.
    public init(states: Set<SocketSnapshot.State> = SocketDiagnostics.defaultStates) throws(SystemError) {
        stateMask = states.subtracting([.listen]).reduce(0) { $0 | 1 << UInt32($1.rawValue) }
        socket = try Self.openSocket()
    }

    // MARK: Snapshots

    /// Every local TCP socket of both families in the requested states.
    public func snapshot() throws(SystemError) -> [SocketSnapshot] {
        var snapshots: [SocketSnapshot] = []
        for family in [AF_INET, AF_INET6] {
            try dump(family: family, including: { _ in true }) { snapshots.append($0) }
        }
        return snapshots
    }

    /// Requests sent in one datagram: their answers (a few hundred bytes each, more in the kernel's
    /// accounting) must fit the receive buffer.
    static let requestsPerDatagram = 256

    /// The sockets of `flows`, keyed by flow. A flow without a socket (closed, in TIME_WAIT, or never
    /// local) has no entry. Each socket is asked for by its tuple; those not found so are looked for in a
    /// dump of all sockets (`dumpSnapshot(of:)`), so the answer is the dump's.
    public func snapshot(of flows: Set<FlowKey>) throws(SystemError) -> [FlowKey: SocketSnapshot] {
        var snapshots: [FlowKey: SocketSnapshot] = [:]
        guard !flows.isEmpty else { return snapshots }
        snapshots.reserveCapacity(flows.count)
        var missing: Set<FlowKey> = []
        let ordered = Array(flows)
        var start = 0
        while start < ordered.count {
            let end = min(ordered.count, start + Self.requestsPerDatagram)
            try ask(ordered[start..<end], into: &snapshots, missing: &missing)
            start = end
        }
        if !missing.isEmpty {
            for (flow, snapshot) in try dumpSnapshot(of: missing) { snapshots[flow] = snapshot }
        }
        return snapshots
    }

    /// Asks for the sockets of `flows` in one datagram and reads every answer.
    private func ask(_ flows: ArraySlice<FlowKey>, into snapshots: inout [FlowKey: SocketSnapshot],
                     missing: inout Set<FlowKey>) throws(SystemError) {
        let socket = try openedSocket()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(flows.count * InetDiagRequest.size)
        var asked: [UInt32: FlowKey] = [:]
        asked.reserveCapacity(flows.count)
        for flow in flows {
            let sequence = socket.nextSequence()
            asked[sequence] = flow
            InetDiagRequest.append(flow: flow, sequence: sequence, to: &bytes)
        }
        do throws(SystemError) {
            var failure: SystemError?
            bytes.withUnsafeBytes { buffer in
                do throws(SystemError) { try socket.send(buffer, call: "TCP sockets by tuple") } catch { failure = error }
            }
            if let failure { throw failure }
            while !asked.isEmpty {
                guard let datagram = try socket.receive(call: "TCP sockets by tuple") else { continue }
                for message in NetlinkMessages(datagram) {
                    guard let answer = InetDiagAnswer(message), let flow = asked.removeValue(forKey: answer.sequence) else {
                        continue
                    }
                    // Found under another tuple cannot happen for an exact lookup, but a LISTEN socket can
                    // answer for a gone one: only the socket of the very flow, in a state asked for, counts.
                    if case .socket(_, let snapshot?) = answer, snapshot.flow == flow,
                        stateMask & (1 << UInt32(snapshot.state.rawValue)) != 0
                    {
                        snapshots[flow] = snapshot
                    } else {
                        missing.insert(flow)
                    }
                }
            }
        } catch {
            self.socket = nil
            throw error
        }
    }

    /// The sockets of `flows`, found in a dump of every socket of the families they may live in.
    public func dumpSnapshot(of flows: Set<FlowKey>) throws(SystemError) -> [FlowKey: SocketSnapshot] {
        var snapshots: [FlowKey: SocketSnapshot] = [:]
        guard !flows.isEmpty else { return snapshots }
        // IPv4 flows may live on IPv6 sockets (v4-mapped), so the IPv6 dump always runs; the IPv4 one only
        // when some flow is IPv4.
        let anyIPv4 = flows.contains { if case .v4 = $0.local.address { true } else { false } }
        for family in anyIPv4 ? [AF_INET, AF_INET6] : [AF_INET6] {
            try dump(family: family, including: { flows.contains($0) }) { snapshots[$0.flow] = $0 }
        }
        return snapshots
    }

    // MARK: Dumping

    private static func openSocket() throws(SystemError) -> NetlinkSocket {
        let socket = try NetlinkSocket(family: .socketDiagnostics)
        try socket.setReceiveTimeout(.seconds(5))
        // The answers to one datagram of requests wait here together.
        try socket.setReceiveBuffer(bytes: 4 << 20)
        return socket
    }

    private func openedSocket() throws(SystemError) -> NetlinkSocket {
        if let socket { return socket }
        let opened = try Self.openSocket()
        socket = opened
        return opened
    }

    /// Dumps the TCP sockets of one family and hands over those whose flow `including` accepts.
    private func dump(
        family: CInt, including: (FlowKey) -> Bool, _ collect: (SocketSnapshot) -> Void
    ) throws(SystemError) {
        var request = inet_diag_req_v2()
        request.sdiag_family = UInt8(family)
        request.sdiag_protocol = UInt8(CLNL_IPPROTO_TCP)
        request.idiag_ext = UInt8(1 << (INET_DIAG_INFO - 1))
        request.idiag_states = stateMask
        let socket = try openedSocket()
        do {
            // inet_diag never flags its dumps as interrupted; a socket that changes state mid-dump is
            // simply seen in one state or the other.
            _ = try socket.dump(
                type: UInt16(SOCK_DIAG_BY_FAMILY), body: request,
                call: family == AF_INET ? "TCP sockets, AF_INET" : "TCP sockets, AF_INET6"
            ) { message in
                if let snapshot = SocketSnapshot(decoding: message, including: including) { collect(snapshot) }
            }
        } catch {
            self.socket = nil
            throw error
        }
    }
}
