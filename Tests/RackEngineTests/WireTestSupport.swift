// rackd — small helpers shared by the wire tests: running views over arrays, and collecting errors.

import RackEngine

/// Runs `body` with a validated view of `bytes`.
func withPacket<Result>(_ bytes: [UInt8], _ body: (IPPacketView) throws -> Result) throws -> Result {
    try bytes.withUnsafeBytes { raw in
        try body(IPPacketView(validating: raw))
    }
}

/// Runs `body` with a validated writable view of `bytes`.
func withMutablePacket(_ bytes: inout [UInt8], _ body: (MutableIPPacketView) throws -> Void) throws {
    try bytes.withUnsafeMutableBytes { raw in
        try body(MutableIPPacketView(validating: raw))
    }
}

/// The error `IPPacketView(validating:)` throws for `bytes`, or nil if they parse.
func packetError(_ bytes: [UInt8]) -> WireError? {
    bytes.withUnsafeBytes { raw -> WireError? in
        do throws(WireError) {
            _ = try IPPacketView(validating: raw)
            return nil
        } catch {
            return error
        }
    }
}

/// The error decoding the option bytes `options` throws, or nil if every option decodes.
func optionError(_ options: [UInt8]) -> WireError? {
    options.withUnsafeBytes { raw -> WireError? in
        do throws(WireError) {
            _ = try TCPOptions.decode(raw)
            return nil
        } catch {
            return error
        }
    }
}

/// The bytes `repr` emits into a buffer poisoned with 0xa5, so any byte it forgets to write shows up.
func emitted(_ repr: TCPSegmentRepr) throws -> [UInt8] {
    var buffer = [UInt8](repeating: 0xa5, count: repr.bufferLength)
    try buffer.withUnsafeMutableBytes { try repr.emit(into: $0) }
    return buffer
}

/// `bytes` with `change` applied, for building malformed variants of a fixture.
func modified(_ bytes: [UInt8], _ change: (inout [UInt8]) -> Void) -> [UInt8] {
    var copy = bytes
    change(&copy)
    return copy
}

/// Sets every IP and TCP header field to the value it already holds, through the setters. A no-op rewrite:
/// if any setter disturbed a neighbouring bit, the bytes would change.
func rewriteEveryFieldInPlace(_ packet: MutableIPPacketView) {
    switch packet.ip {
    case .v4(let ip):
        ip.version = ip.version
        ip.internetHeaderLength = ip.internetHeaderLength
        ip.dscp = ip.dscp
        ip.ecn = ip.ecn
        ip.totalLength = ip.totalLength
        ip.identification = ip.identification
        ip.flags = ip.flags
        ip.fragmentOffset = ip.fragmentOffset
        ip.timeToLive = ip.timeToLive
        ip.protocol = ip.protocol
        ip.headerChecksum = ip.headerChecksum
        ip.source = ip.source
        ip.destination = ip.destination
    case .v6(let ip):
        ip.version = ip.version
        ip.trafficClass = ip.trafficClass
        ip.flowLabel = ip.flowLabel
        ip.payloadLength = ip.payloadLength
        ip.nextHeader = ip.nextHeader
        ip.hopLimit = ip.hopLimit
        ip.source = ip.source
        ip.destination = ip.destination
    }
    let tcp = packet.tcp
    tcp.sourcePort = tcp.sourcePort
    tcp.destinationPort = tcp.destinationPort
    tcp.sequenceNumber = tcp.sequenceNumber
    tcp.acknowledgmentNumber = tcp.acknowledgmentNumber
    tcp.dataOffset = tcp.dataOffset
    tcp.flags = tcp.flags
    tcp.window = tcp.window
    tcp.checksum = tcp.checksum
    tcp.urgentPointer = tcp.urgentPointer
}

/// Sets every TCP field the O(1) checksum path covers to the value it already holds, updating the checksum.
func rewriteEveryFieldIncrementally(_ tcp: MutableTCPHeaderView) throws {
    tcp.setSourcePort(tcp.sourcePort, updatingChecksum: true)
    tcp.setDestinationPort(tcp.destinationPort, updatingChecksum: true)
    tcp.setSequenceNumber(tcp.sequenceNumber, updatingChecksum: true)
    tcp.setAcknowledgmentNumber(tcp.acknowledgmentNumber, updatingChecksum: true)
    tcp.setFlags(tcp.flags, updatingChecksum: true)
    tcp.setWindow(tcp.window, updatingChecksum: true)
    tcp.setUrgentPointer(tcp.urgentPointer, updatingChecksum: true)
    try tcp.shiftSACKBlocks(by: .zero, updatingChecksum: true)
}

extension Array where Element == UInt8 {
    /// The bytes in hex, for failure messages.
    var hex: String {
        map { ($0 < 0x10 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

/// Bytes from a hex string (test data only).
func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.utf8)
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
}
