// rackd — the ordinary sets' elements read back from a GETSETELEM dump (Decoding/OrdinaryElementDump.swift),
// over hand-built replies in the kernel's layout (nf_tables_fill_setelem).

@testable import RackDaemon
import RackEngine
import Testing

@Suite struct OrdinaryElementDumpTests {
    /// A netlink attribute: length, type, payload, padded to 4 bytes.
    private func attribute(_ type: UInt16, _ payload: [UInt8], nested: Bool = false) -> [UInt8] {
        let length = UInt16(4 + payload.count)
        let flagged = nested ? type | 0x8000 : type  // NLA_F_NESTED, as the kernel sets it
        return withUnsafeBytes(of: length) { Array($0) } + withUnsafeBytes(of: flagged) { Array($0) } + payload
            + [UInt8](repeating: 0, count: (4 - payload.count % 4) % 4)
    }

    /// One element: NFTA_LIST_ELEM { KEY { DATA_VALUE key }, TIMEOUT, EXPIRATION }.
    private func element(key: [UInt8], expiration: UInt64?) -> [UInt8] {
        var fields = attribute(1, attribute(1, key), nested: true)
        fields += attribute(4, withUnsafeBytes(of: UInt64(600_000).bigEndian) { Array($0) })
        if let expiration { fields += attribute(5, withUnsafeBytes(of: expiration.bigEndian) { Array($0) }) }
        return attribute(1, fields, nested: true)
    }

    /// A whole NEWSETELEM reply: header, nfgenmsg, table, set, the element list.
    private func reply(_ elements: [[UInt8]], type: UInt16 = 10 << 8 | 12) -> [UInt8] {
        let payload = [1, 0, 0, 0] + attribute(1, Array("rackd".utf8) + [0]) + attribute(2, Array("ordinary4".utf8) + [0])
            + attribute(3, elements.flatMap { $0 }, nested: true)
        let length = UInt32(16 + payload.count)
        return withUnsafeBytes(of: length) { Array($0) } + withUnsafeBytes(of: type) { Array($0) }
            + [0x02, 0x00] + [UInt8](repeating: 0, count: 8) + payload
    }

    private func decode(_ bytes: [UInt8]) -> [OrdinaryDestination] {
        bytes.withUnsafeBytes { buffer in
            var messages = NetlinkMessages(buffer)
            guard let message = messages.next() else { return [] }
            return OrdinaryElementDump.destinations(in: message)
        }
    }

    @Test func keysAndTimeLeftBecomeDestinations() {
        let v4 = TCPEndpoint(address: IPAddress(parsing: "10.2.0.2")!, port: 5001)
        let v6 = TCPEndpoint(address: IPAddress(parsing: "fd00:2::2")!, port: 443)
        let found = decode(reply([
            element(key: RackdRuleset.ordinaryKey(v4), expiration: 299_836),
            element(key: RackdRuleset.ordinaryKey(v6), expiration: 1_000),
        ]))
        #expect(found == [OrdinaryDestination(destination: v4, lifetime: .milliseconds(299_836)),
                          OrdinaryDestination(destination: v6, lifetime: .seconds(1))])
    }

    @Test func elementsWithoutTimeLeftOrWithAForeignKeyAreSkipped() {
        let v4 = TCPEndpoint(address: IPAddress(parsing: "10.2.0.2")!, port: 5001)
        #expect(decode(reply([element(key: RackdRuleset.ordinaryKey(v4), expiration: nil),
                              element(key: RackdRuleset.ordinaryKey(v4), expiration: 0),
                              element(key: [1, 2, 3], expiration: 5_000)])).isEmpty)
    }

    @Test func otherMessagesGiveNothing() {
        let v4 = TCPEndpoint(address: IPAddress(parsing: "10.2.0.2")!, port: 5001)
        #expect(decode(reply([element(key: RackdRuleset.ordinaryKey(v4), expiration: 5_000)], type: 10 << 8 | 14)).isEmpty)
    }
}
