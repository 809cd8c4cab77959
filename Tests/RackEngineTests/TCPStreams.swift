// rackd — the TCP connections of a capture, reassembled: for each connection, in the order its SYN
// appears, the payload segments each side sent (retransmissions dropped) and the byte stream they make.

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

    var clientStream: [UInt8] { fromClient.flatMap { $0 } }
    var serverStream: [UInt8] { fromServer.flatMap { $0 } }
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
            let expected = next[index]![clientSide]!
            guard offset <= expected, offset &+ UInt32(segment.payload.count) > expected else { continue }
            let fresh = Array(segment.payload.dropFirst(Int(expected - offset)))
            next[index]![clientSide] = expected + UInt32(fresh.count)
            if clientSide { connections[index].fromClient.append(fresh) } else { connections[index].fromServer.append(fresh) }
        }
        return connections
    }
}
