// rackd — the TCP connections of a capture, reassembled: for each connection, in the order its SYN
// appears, the payload segments each side sent (retransmissions dropped) and the byte stream they make.
// A trimmed capture (tools/trim-capture.py) cuts bytes out of a connection: the segments and the stream
// stop at the cut, and `clientRuns`/`serverRuns` keep each stretch of contiguous bytes at its offset.

import RackEngine

struct CapturedConnection {
    /// The client's and the server's endpoints.
    var client: TCPEndpoint
    var server: TCPEndpoint
    /// The payloads of each direction's segments, in sequence order, each new byte once.
    var fromClient: [[UInt8]] = []
    var fromServer: [[UInt8]] = []
    var clientFIN = false
    var serverFIN = false
    var clientRST = false
    var serverRST = false

    /// Each direction's bytes as runs without a gap, at their offset in the stream (0: the byte after
    /// the SYN); the first run is the stream above.
    var clientRuns: [StreamRun] = []
    var serverRuns: [StreamRun] = []

    var clientStream: [UInt8] { fromClient.flatMap { $0 } }
    var serverStream: [UInt8] { fromServer.flatMap { $0 } }
}

/// Contiguous bytes of one direction of a connection, from `offset` on.
struct StreamRun {
    var offset: Int
    var bytes: [UInt8]
    var end: Int { offset + bytes.count }
}

enum TCPStreams {
    /// Every connection that starts with a SYN in `packets`, in the order of the SYNs.
    static func connections(in packets: [[UInt8]]) throws -> [CapturedConnection] {
        var connections: [CapturedConnection] = []
        var byClient: [FlowKey: Int] = [:]
        /// Per connection and direction: the ISN and the highest sequence offset delivered so far.
        var next: [Int: [Bool: UInt32]] = [:]
        var isn: [Int: [Bool: TCPSequenceNumber]] = [:]
        for bytes in packets {
            guard let segment = try? bytes.withUnsafeBytes({ try TCPSegmentRepr(parsing: try IPPacketView(validating: $0)) })
            else { continue }
            let flags = segment.flags
            if flags.contains(.syn) && !flags.contains(.ack) {
                let key = FlowKey(local: segment.source, remote: segment.destination)
                if byClient[key] == nil {
                    byClient[key] = connections.count
                    connections.append(CapturedConnection(client: segment.source, server: segment.destination))
                    isn[connections.count - 1] = [true: segment.sequenceNumber]
                    next[connections.count - 1] = [true: 1]
                }
                continue
            }
            let fromClient = byClient[FlowKey(local: segment.source, remote: segment.destination)]
            let fromServer = byClient[FlowKey(local: segment.destination, remote: segment.source)]
            guard let index = fromClient ?? fromServer else { continue }
            let clientSide = fromClient != nil
            if flags.contains(.syn) {
                isn[index]![clientSide] = segment.sequenceNumber
                next[index]![clientSide] = 1
                continue
            }
            guard let start = isn[index]?[clientSide] else { continue }
            if flags.contains(.rst) {
                if clientSide { connections[index].clientRST = true } else { connections[index].serverRST = true }
            }
            if flags.contains(.fin) {
                if clientSide { connections[index].clientFIN = true } else { connections[index].serverFIN = true }
            }
            guard !segment.payload.isEmpty else { continue }
            let offset = segment.sequenceNumber.rawValue &- start.rawValue
            if clientSide {
                TCPStreams.add(segment.payload, at: Int(offset) - 1, to: &connections[index].clientRuns)
            } else {
                TCPStreams.add(segment.payload, at: Int(offset) - 1, to: &connections[index].serverRuns)
            }
            let expected = next[index]![clientSide]!
            guard offset <= expected, offset &+ UInt32(segment.payload.count) > expected else { continue }
            let fresh = Array(segment.payload.dropFirst(Int(expected - offset)))
            next[index]![clientSide] = expected + UInt32(fresh.count)
            if clientSide { connections[index].fromClient.append(fresh) } else { connections[index].fromServer.append(fresh) }
        }
        return connections
    }

    /// Adds a segment's payload to the runs: the new bytes go on the last run, or start a run of their own
    /// past a cut; bytes already there (retransmissions) are dropped.
    static func add(_ payload: some Collection<UInt8>, at offset: Int, to runs: inout [StreamRun]) {
        let end = runs.last?.end ?? 0
        guard offset + payload.count > end else { return }
        if offset <= end, !runs.isEmpty {
            runs[runs.count - 1].bytes += payload.dropFirst(end - offset)
        } else {
            runs.append(StreamRun(offset: offset, bytes: Array(payload)))
        }
    }
}
