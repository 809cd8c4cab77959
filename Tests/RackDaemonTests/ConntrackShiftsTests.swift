// rackd — the ctnetlink requests of Kernel/ConntrackShifts.swift, as libnetfilter_conntrack encodes them:
// the entry of docs/kernel-seqadj.md's "Working recipe" for a create, the tuple alone for a delete. The
// bytes are read back with the decoders' own attribute walk; the kernel's side is the namespace check of
// the integration tests.

import CConntrack
@testable import RackDaemon
import RackEngine
import Testing

@Suite struct ConntrackShiftsTests {
    static let ipv4 = FlowKey(local: TCPEndpoint(address: IPAddress(parsing: "10.1.0.2")!, port: 40001),
                              remote: TCPEndpoint(address: IPAddress(parsing: "10.2.0.3")!, port: 7201))
    static let ipv6 = FlowKey(local: TCPEndpoint(address: IPAddress(parsing: "fd00:1::2")!, port: 40001),
                              remote: TCPEndpoint(address: IPAddress(parsing: "fd00:2::3")!, port: 7201))

    /// The attributes of `bytes` (after `fixed` bytes) by type, payloads copied; the last of a type counts.
    static func attributes(_ bytes: [UInt8], after fixed: Int = 0) -> [UInt16: [UInt8]] {
        bytes.withUnsafeBytes { buffer in
            var found: [UInt16: [UInt8]] = [:]
            var walk = NetlinkAttributes(buffer, after: fixed)
            while let attribute = walk.next() { found[attribute.type] = Array(attribute.payload) }
            #expect(!walk.isMalformed)
            return found
        }
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
    static func port(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xff)] }

    /// CTA_TUPLE_IP and CTA_TUPLE_PROTO of a tuple from `source` to `destination`.
    static func expectTuple(_ payload: [UInt8]?, from source: TCPEndpoint, to destination: TCPEndpoint) throws {
        let tuple = attributes(try #require(payload))
        let ip = attributes(try #require(tuple[1]))
        let (sourceType, destinationType): (UInt16, UInt16) = source.address.isIPv4 ? (1, 2) : (3, 4)
        #expect(ip[sourceType] == source.address.bytes)
        #expect(ip[destinationType] == destination.address.bytes)
        let proto = attributes(try #require(tuple[2]))
        #expect(proto[1] == [6])  // CTA_PROTO_NUM: TCP
        #expect(proto[2] == port(source.port))
        #expect(proto[3] == port(destination.port))
    }

    @Test(arguments: [ipv4, ipv6])
    func aCreateCarriesTheRecipe(_ flow: FlowKey) throws {
        // The socket's numbers go out 100000 higher; the peer's reach it 5000 lower: conntrack's reply offset
        // is −5000 (KernelShift.replyOffset).
        let shift = KernelShift(flow: flow, localOffset: TCPSequenceOffset(rawValue: 100_000),
                                peerOffset: TCPSequenceOffset(rawValue: 5000))
        let body = try ConntrackShifts.requestBody(for: flow, shift: shift, call: "test")
        #expect(body[0] == (flow.local.address.isIPv4 ? 2 : 10))  // nfgenmsg: AF_INET, AF_INET6
        let entry = Self.attributes(body, after: 4)
        try Self.expectTuple(entry[1], from: flow.local, to: flow.remote)  // CTA_TUPLE_ORIG: the socket's outbound
        try Self.expectTuple(entry[2], from: flow.remote, to: flow.local)  // CTA_TUPLE_REPLY: its inverse
        #expect(entry[3] == Self.bigEndian(0x8 | 0x4 | 0x2))  // CTA_STATUS: CONFIRMED, ASSURED, SEEN_REPLY
        #expect(entry[7] == Self.bigEndian(432_000))  // CTA_TIMEOUT
        let protoinfo = Self.attributes(try #require(entry[4]))  // CTA_PROTOINFO
        let tcp = Self.attributes(try #require(protoinfo[1]))  // CTA_PROTOINFO_TCP
        #expect(tcp[1] == [3])  // state ESTABLISHED
        #expect(tcp[4] == [0x08, 0x08])  // FLAGS_ORIGINAL: BE_LIBERAL, mask BE_LIBERAL
        #expect(tcp[5] == [0x08, 0x08])  // FLAGS_REPLY
        for (type, offset) in [(UInt16(15), Int32(100_000)), (16, -5000)] {  // CTA_SEQ_ADJ_ORIG, _REPLY
            let adjustment = Self.attributes(try #require(entry[type]))
            #expect(adjustment[1] == Self.bigEndian(0))  // CORRECTION_POS
            #expect(adjustment[2] == Self.bigEndian(UInt32(bitPattern: offset)))  // OFFSET_BEFORE
            #expect(adjustment[3] == Self.bigEndian(UInt32(bitPattern: offset)))  // OFFSET_AFTER
        }
        #expect(shift.originalOffset == 100_000)
        #expect(shift.replyOffset == -5000)
    }

    /// After a reconnection the rock's packets arrive on the link's tuple: the entry's reply tuple is that
    /// one's inverse, so they find the socket's entry, as a NAT entry's replies do.
    @Test func aReconnectedConnectionsReplyTupleIsTheLinks() throws {
        let link = FlowKey(local: TCPEndpoint(address: Self.ipv4.local.address, port: 44000),
                           remote: TCPEndpoint(address: Self.ipv4.remote.address, port: 45001))
        let shift = KernelShift(flow: Self.ipv4, wire: link, localOffset: TCPSequenceOffset(rawValue: 7),
                                peerOffset: TCPSequenceOffset(rawValue: 9))
        let entry = Self.attributes(try ConntrackShifts.requestBody(for: Self.ipv4, shift: shift, call: "test"), after: 4)
        try Self.expectTuple(entry[1], from: Self.ipv4.local, to: Self.ipv4.remote)  // the socket's outbound
        try Self.expectTuple(entry[2], from: link.remote, to: link.local)  // the link's inbound
    }

    @Test(arguments: [ipv4, ipv6])
    func aDeleteCarriesOnlyTheTuple(_ flow: FlowKey) throws {
        let body = try ConntrackShifts.requestBody(for: flow, shift: nil, call: "test")
        let entry = Self.attributes(body, after: 4)
        try Self.expectTuple(entry[1], from: flow.local, to: flow.remote)
        #expect(Set(entry.keys).isSubset(of: [1, 2]))
    }

    @Test func messageTypesAreCtnetlinks() {
        #expect(ConntrackShifts.messageType(IPCTNL_MSG_CT_NEW) == 0x100)
        #expect(ConntrackShifts.messageType(IPCTNL_MSG_CT_GET) == 0x101)
        #expect(ConntrackShifts.messageType(IPCTNL_MSG_CT_DELETE) == 0x102)
    }

    /// The ruleset's IPS_SEQ_ADJUST is the kernel's.
    @Test func sequenceAdjustIsTheKernels() {
        #expect(RackdRuleset.sequenceAdjustStatus == UInt32(IPS_SEQ_ADJUST.rawValue))
    }
}
