// rackd — a wire mapping with a sequence offset in each direction (Core/WireMapping.swift), as a rocks
// connection will carry for life: what the socket sends leaves shifted, what the peer sends arrives
// unshifted, and a segment rackd builds goes out as the socket's own would.

import Testing
@testable import RackEngine

@Suite struct WireMappingTests {
    static let socket = FlowKey(local: TCPEndpoint(address: .v4(IPv4Address(10, 1, 0, 2)), port: 40_000),
                                remote: TCPEndpoint(address: .v4(IPv4Address(10, 2, 0, 2)), port: 22))
    static let wire = FlowKey(local: TCPEndpoint(address: .v4(IPv4Address(10, 9, 0, 7)), port: 40_000),
                              remote: TCPEndpoint(address: .v4(IPv4Address(10, 2, 0, 2)), port: 22))
    /// 16 bytes we sent in band, 73 the peer did; the peer's crosses 2^32.
    static let mapping = WireMapping(wire: wire, localSequenceOffset: TCPSequenceOffset(rawValue: 16),
                                     peerSequenceOffset: TCPSequenceOffset(rawValue: 73))

    static func apply(_ rewrite: FlowRewrite, to segment: TCPSegmentRepr) throws -> TCPSegmentRepr {
        var bytes = [UInt8](repeating: 0, count: segment.bufferLength)
        try bytes.withUnsafeMutableBytes { try segment.emit(into: $0) }
        try bytes.withUnsafeMutableBytes { try rewrite.apply(to: $0, checksum: .complete) }
        #expect(bytes.withUnsafeBytes { (try? IPPacketView(validating: $0))?.verifyChecksums(tcpChecksum: .complete) } == true)
        return try bytes.withUnsafeBytes { try TCPSegmentRepr(parsing: try IPPacketView(validating: $0)) }
    }

    @Test func theSocketsSegmentsLeaveShiftedBothWays() throws {
        let sent = TCPSegmentRepr(source: Self.socket.local, destination: Self.socket.remote,
                                  sequenceNumber: TCPSequenceNumber(1000), acknowledgmentNumber: TCPSequenceNumber(0xFFFF_FFF0),
                                  flags: [.ack, .psh], window: 500, payload: [1, 2, 3])
        let onWire = try Self.apply(Self.mapping.outbound, to: sent)
        #expect(onWire.source == Self.wire.local && onWire.destination == Self.wire.remote)
        #expect(onWire.sequenceNumber == TCPSequenceNumber(1016))
        #expect(onWire.acknowledgmentNumber == TCPSequenceNumber(0xFFFF_FFF0) + 73)
        #expect(onWire.payload == [1, 2, 3])
        // rackd's own segments in the socket's terms go out the same way.
        let built = Self.mapping.outbound(sent)
        #expect(built.sequenceNumber == onWire.sequenceNumber && built.acknowledgmentNumber == onWire.acknowledgmentNumber)
    }

    @Test func thePeersSegmentsArriveInTheSocketsTerms() throws {
        let arriving = TCPSegmentRepr(source: Self.wire.remote, destination: Self.wire.local,
                                      sequenceNumber: TCPSequenceNumber(0xFFFF_FFF0) + 73, acknowledgmentNumber: TCPSequenceNumber(1016),
                                      flags: .ack, window: 500, payload: [9])
        let forSocket = try Self.apply(Self.mapping.inbound(to: Self.socket), to: arriving)
        #expect(forSocket.source == Self.socket.remote && forSocket.destination == Self.socket.local)
        #expect(forSocket.sequenceNumber == TCPSequenceNumber(0xFFFF_FFF0))
        #expect(forSocket.acknowledgmentNumber == TCPSequenceNumber(1000))
    }

    @Test func onlyAMappingThatChangesNothingIsTheIdentity() {
        #expect(WireMapping(wire: Self.socket).isIdentity(for: Self.socket))
        #expect(!WireMapping(wire: Self.socket, localSequenceOffset: TCPSequenceOffset(rawValue: 1)).isIdentity(for: Self.socket))
        #expect(!Self.mapping.isIdentity(for: Self.socket))
    }
}
