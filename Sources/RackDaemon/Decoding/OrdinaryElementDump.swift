// rackd — the ordinary sets' elements as a GETSETELEM dump gives them, with the time each has left, so that
// a restarted rackd keeps the destinations the last one cached (docs/restarts.md). Pure: bytes in, values out.
//
// A reply's payload is `nfgenmsg` and NFTA_SET_ELEM_LIST_* attributes; NFTA_SET_ELEM_LIST_ELEMENTS (3) nests
// NFTA_LIST_ELEM (1) entries, each with NFTA_SET_ELEM_KEY (1, nesting NFTA_DATA_VALUE 1) and, in a set with
// timeouts, NFTA_SET_ELEM_EXPIRATION (5): milliseconds left, big-endian 64 bits.

import RackEngine

enum OrdinaryElementDump {
    /// The destinations in one reply message, each with its time left; elements without a key, with a key
    /// that is no ordinary set's, or without an expiration are skipped. Empty for any other message.
    static func destinations(in message: NetlinkMessage) -> [OrdinaryDestination] {
        // NFNL_SUBSYS_NFTABLES, NFT_MSG_NEWSETELEM (the type of dump replies).
        guard message.type == 10 << 8 | 12, message.payload.count >= 4 else { return [] }
        var found: [OrdinaryDestination] = []
        var attributes = NetlinkAttributes(message.payload, after: 4)
        while let list = attributes.next() {
            guard list.type == 3 else { continue }
            var elements = NetlinkAttributes(list.payload, after: 0)
            while let element = elements.next() {
                guard element.type == 1 else { continue }
                var key: [UInt8]?
                var expiration: UInt64?
                var fields = NetlinkAttributes(element.payload, after: 0)
                while let field = fields.next() {
                    switch field.type {
                    case 1:
                        var data = NetlinkAttributes(field.payload, after: 0)
                        while let value = data.next() { if value.type == 1 { key = Array(value.payload) } }
                    case 5:
                        expiration = field.bigEndianInteger(as: UInt64.self)
                    default:
                        break
                    }
                }
                guard let key, let expiration, expiration > 0, let destination = Self.destination(key) else { continue }
                found.append(OrdinaryDestination(destination: destination, lifetime: .milliseconds(Int64(clamping: expiration))))
            }
        }
        return found
    }

    /// The destination an ordinary set's key names (RackdRuleset.ordinaryKey): address, port, 2 bytes of padding.
    static func destination(_ key: [UInt8]) -> TCPEndpoint? {
        func word(_ at: Int) -> UInt64 { key[at..<at + 8].reduce(0) { $0 << 8 | UInt64($1) } }
        let port: (Int) -> UInt16 = { UInt16(key[$0]) << 8 | UInt16(key[$0 + 1]) }
        switch key.count {
        case 8: return TCPEndpoint(address: .v4(IPv4Address(key[0], key[1], key[2], key[3])), port: port(4))
        case 20: return TCPEndpoint(address: .v6(IPv6Address(high: word(0), low: word(8))), port: port(16))
        default: return nil
        }
    }
}
