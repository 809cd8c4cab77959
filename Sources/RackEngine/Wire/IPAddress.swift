// rackd — an address of either IP family, and a TCP endpoint.
//
// Connection endpoints are compared and hashed as values, whatever the family, so flow tables can key
// on them without caring whether the connection runs over IPv4 or IPv6.

/// An IPv4 or IPv6 address.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible, Codable {
    /// An IPv4 address.
    case v4(IPv4Address)
    /// An IPv6 address.
    case v6(IPv6Address)

    /// The address in its family's usual text form.
    public var description: String {
        switch self {
        case .v4(let address): address.description
        case .v6(let address): address.description
        }
    }

    public var isIPv4: Bool {
        if case .v4 = self { return true }
        return false
    }

    /// Network-order bytes: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let address): address.bytes
        case .v6(let address): address.bytes
        }
    }
}

/// One end of a TCP connection: an address and a port.
public struct TCPEndpoint: Hashable, Sendable, CustomStringConvertible, Codable {
    /// The IP address.
    public var address: IPAddress
    /// The TCP port.
    public var port: UInt16

    /// The endpoint `address` port `port`.
    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// "10.0.0.1:80" or "[2001:db8::1]:80", as URLs write them.
    public var description: String {
        switch address {
        case .v4: "\(address):\(port)"
        case .v6: "[\(address)]:\(port)"
        }
    }
}

/// An IP protocol number (IPv4 "Protocol", IPv6 "Next Header"), with Swift names for the ones rackd
/// meets.
public struct IPProtocol: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The number as it appears on the wire.
    public var rawValue: UInt8

    /// Wraps a protocol number as read from the wire.
    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    /// IPv6 Hop-by-Hop Options extension header (0).
    public static let hopByHopOptions = IPProtocol(rawValue: 0)
    /// ICMP for IPv4 (1).
    public static let icmp = IPProtocol(rawValue: 1)
    /// TCP (6).
    public static let tcp = IPProtocol(rawValue: 6)
    /// UDP (17).
    public static let udp = IPProtocol(rawValue: 17)
    /// IPv6 Routing extension header (43).
    public static let routing = IPProtocol(rawValue: 43)
    /// IPv6 Fragment extension header (44).
    public static let fragment = IPProtocol(rawValue: 44)
    /// ICMPv6 (58).
    public static let icmpv6 = IPProtocol(rawValue: 58)
    /// IPv6 "no next header" (59).
    public static let noNextHeader = IPProtocol(rawValue: 59)
    /// IPv6 Destination Options extension header (60).
    public static let destinationOptions = IPProtocol(rawValue: 60)

    /// The decimal number.
    public var description: String { String(rawValue) }
}
