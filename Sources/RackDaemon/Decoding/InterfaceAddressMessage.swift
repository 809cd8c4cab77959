// rackd — one address message of rtnetlink (RTM_NEWADDR, RTM_DELADDR), decoded. Pure: bytes in, values
// out.
//
// The message is an `ifaddrmsg` followed by IFA_* attributes. IFA_LOCAL is the local address; IFA_ADDRESS
// is the peer's on a point-to-point link and the local one otherwise (IPv6 sends only IFA_ADDRESS).

import CLinuxNetlink
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

/// One address of an interface, with its `IFA_F_*` flags.
struct InterfaceAddress: Equatable {
    var address: IPAddress
    var flags: AddressFlags

    /// Neither tentative (IPv6 DAD still running, unless optimistic) nor failed DAD.
    var isUsable: Bool {
        if flags.contains(.dadFailed) { return false }
        return !flags.contains(.tentative) || flags.contains(.optimistic)
    }

    /// Decodes an `ifaddrmsg` and its attributes into the interface index and the address. Nil for a
    /// message too short for its header or with a malformed or cut attribute, families other than IPv4 and
    /// IPv6, a message without an address, and loopback and IPv6 link-local addresses, which rackd never
    /// reports.
    static func decode(_ payload: UnsafeRawBufferPointer) -> (index: Int32, address: InterfaceAddress)? {
        let fixedSize = MemoryLayout<ifaddrmsg>.size
        guard payload.count >= fixedSize else { return nil }
        let header = payload.loadUnaligned(as: ifaddrmsg.self)
        var flags = UInt32(header.ifa_flags)
        var local: IPAddress?
        var address: IPAddress?
        var attributes = NetlinkAttributes(payload, after: fixedSize)
        while let attribute = attributes.next() {
            switch CInt(attribute.type) {
            case CInt(IFA_LOCAL): local = ipAddress(family: header.ifa_family, attribute.payload)
            case CInt(IFA_ADDRESS): address = ipAddress(family: header.ifa_family, attribute.payload)
            // The 8-bit ifa_flags holds only the low flags; IFA_FLAGS holds them all.
            case CInt(IFA_FLAGS): flags = attribute.integer(as: UInt32.self) ?? flags
            default: break
            }
        }
        guard !attributes.isMalformed, let chosen = local ?? address, !isIgnored(chosen) else { return nil }
        return (Int32(bitPattern: header.ifa_index), InterfaceAddress(address: chosen, flags: AddressFlags(rawValue: flags)))
    }

    private static func ipAddress(family: UInt8, _ bytes: UnsafeRawBufferPointer) -> IPAddress? {
        switch CInt(family) {
        case AF_INET where bytes.count >= 4:
            return .v4(IPv4Address(rawValue: UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self))))
        case AF_INET6 where bytes.count >= 16:
            return .v6(
                IPv6Address(
                    high: UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self)),
                    low: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))))
        default:
            return nil
        }
    }

    /// Loopback addresses (127.0.0.0/8, ::1) and IPv6 link-local addresses (fe80::/10).
    private static func isIgnored(_ address: IPAddress) -> Bool {
        switch address {
        case .v4(let v4): v4.rawValue >> 24 == 127
        case .v6(let v6): (v6.high == 0 && v6.low == 1) || v6.high >> 54 == 0xfe80 >> 6
        }
    }
}

/// The `IFA_F_*` address flags rackd looks at.
struct AddressFlags: OptionSet, Equatable {
    var rawValue: UInt32
    /// IFA_F_OPTIMISTIC: optimistic DAD; usable while tentative.
    static let optimistic = AddressFlags(rawValue: UInt32(IFA_F_OPTIMISTIC))
    /// IFA_F_DADFAILED: a duplicate was found; never usable.
    static let dadFailed = AddressFlags(rawValue: UInt32(IFA_F_DADFAILED))
    /// IFA_F_TENTATIVE: duplicate address detection has not finished.
    static let tentative = AddressFlags(rawValue: UInt32(IFA_F_TENTATIVE))
    /// IFA_F_NODAD: no duplicate address detection for this address.
    static let noDAD = AddressFlags(rawValue: UInt32(IFA_F_NODAD))
}
