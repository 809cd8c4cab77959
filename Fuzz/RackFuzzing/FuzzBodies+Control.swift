// rackd — the control-requests fuzz body (Fuzz/fuzz-control-requests): what a local client may send to
// rackd's control socket, read as rackd reads it. With a status group the socket is open to every local
// user (docs/control.md), so these bytes are as untrusted as the network's.

import RackControl

extension FuzzBodies {
    /// The input's first byte chooses a piece size (1 to 64 bytes); the rest is a client's stream, fed to
    /// the line reader in pieces of that size as the control loop's reads would deliver them. The reader
    /// must keep at most its limit and find exactly the bytes before the first newline; a line is decoded
    /// as a request, which must survive an encode/decode round trip and the access checks, and as an
    /// answer (what rackctl decodes).
    public static func controlRequests(_ bytes: UnsafeRawBufferPointer) {
        guard let first = bytes.first else { return }
        let piece = Int(first % 64) + 1
        let stream = Array(bytes.dropFirst())
        let limit = ControlCoding.maximumRequestBytes
        var reader = ControlLineReader(limit: limit)
        var line: [UInt8]?
        var offset = 0
        reading: while offset < stream.count {
            let end = min(offset + piece, stream.count)
            switch reader.append(stream[offset..<end]) {
            case .needMore:
                precondition(reader.pending.count <= limit, "the line reader kept more than its limit")
            case .line(let found):
                line = found
                break reading
            case .tooLong:
                precondition(!stream.prefix(limit + 1).contains(0x0A), "a line within the limit was called too long")
                return
            }
            offset = end
        }
        guard let line = line ?? reader.finish() else {
            precondition(stream.isEmpty, "bytes arrived but the reader found nothing")
            return
        }
        precondition(line == Array(stream.prefix { $0 != 0x0A }), "the line is not the bytes before the first newline")
        _ = try? ControlCoding.decode(ControlResponse.self, from: line)
        guard let request = try? ControlCoding.decode(ControlRequest.self, from: line) else { return }
        let encoded = try? ControlCoding.line(request)
        precondition(encoded.flatMap { try? ControlCoding.decode(ControlRequest.self, from: $0.dropLast()) } == request,
                     "a control request did not survive an encode/decode round trip")
        let peers = [
            PeerCredentials(pid: 1, uid: 0, gid: 0, groups: []),
            PeerCredentials(pid: 2, uid: 1000, gid: 1000, groups: [4]),
            PeerCredentials(pid: 3, uid: 1001, gid: 1001, groups: []),
        ]
        for peer in peers {
            let admitted = ControlAccess.admit(peer, statusGroup: 4) == .allowed
            precondition(admitted || ControlAccess.decide(request, from: peer, statusGroup: 4) != .allowed,
                         "a client refused at accept would have been allowed its request")
        }
    }
}
