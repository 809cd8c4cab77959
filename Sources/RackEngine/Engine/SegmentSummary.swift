// rackd — the few facts about a queued TCP segment that flow tracking needs.

/// The endpoints and flags of a TCP segment, read from its IP packet.
struct SegmentSummary {
    var source: TCPEndpoint
    var destination: TCPEndpoint
    var flags: TCPFlags

    init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        let packet = try IPPacketView(validating: bytes)
        let tcp = packet.tcp
        source = TCPEndpoint(address: packet.source, port: tcp.sourcePort)
        destination = TCPEndpoint(address: packet.destination, port: tcp.destinationPort)
        flags = tcp.flags
    }
}
