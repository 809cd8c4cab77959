// rackd — which connections rackd manages (docs/configuration.md, `[policy]`; docs/architecture.md,
// "Data path: what is never queued": the daemon's rules skip the same connections in the kernel,
// RackDaemon/Firewall/RackdRuleset+Ordinary.swift).
//
// By default every TCP connection except loopback, TCP-MD5 and TCP-AO ones. `manage-ports` narrows that
// to connections whose server port is listed; `exclude-ports` and `exclude-addresses` take connections
// out. Loopback, MD5 and AO are excluded whatever the configuration says.

/// A range of TCP ports, inclusive.
public struct PortRange: Hashable, Sendable, CustomStringConvertible {
    public var lower: UInt16
    public var upper: UInt16

    public init(_ lower: UInt16, _ upper: UInt16? = nil) {
        self.lower = lower
        self.upper = upper ?? lower
    }

    public func contains(_ port: UInt16) -> Bool { lower <= port && port <= upper }
    public var description: String { lower == upper ? "\(lower)" : "\(lower)-\(upper)" }
}

/// An address prefix such as 192.168.0.0/16 or fd00::/8.
public struct AddressPrefix: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var length: Int

    public init(_ address: IPAddress, length: Int) {
        self.address = address
        self.length = length
    }

    public func contains(_ candidate: IPAddress) -> Bool {
        let (mine, theirs): ([UInt8], [UInt8])
        switch (address, candidate) {
        case (.v4(let a), .v4(let b)): (mine, theirs) = (a.bytes, b.bytes)
        case (.v6(let a), .v6(let b)): (mine, theirs) = (a.bytes, b.bytes)
        default: return false
        }
        var remaining = length
        for index in mine.indices where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if mine[index] & mask != theirs[index] & mask { return false }
            remaining -= bits
        }
        return true
    }

    public var description: String { "\(address)/\(length)" }
}

/// The manage/exclude rules.
public struct Policy: Sendable, Equatable {
    /// Server ports to manage; empty means all.
    public var managePorts: [PortRange] = []
    /// Server ports never to manage.
    public var excludePorts: [PortRange] = []
    /// Peer addresses never to manage.
    public var excludeAddresses: [AddressPrefix] = []

    public init() {}

    /// Whether a connection between `local` and `remote` may be managed. `serverPort` is the port of
    /// the end that listened.
    public func allows(local: TCPEndpoint, remote: TCPEndpoint, serverPort: UInt16) -> Bool {
        if Self.isLoopback(local.address) || Self.isLoopback(remote.address) { return false }
        if !managePorts.isEmpty && !managePorts.contains(where: { $0.contains(serverPort) }) { return false }
        if excludePorts.contains(where: { $0.contains(serverPort) }) { return false }
        if excludeAddresses.contains(where: { $0.contains(remote.address) }) { return false }
        return true
    }

    static func isLoopback(_ address: IPAddress) -> Bool {
        switch address {
        case .v4(let a): a.bytes[0] == 127
        case .v6(let a): a.bytes == [UInt8](repeating: 0, count: 15) + [1]
            || (a.bytes.prefix(12) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] && a.bytes[12] == 127)
        }
    }
}
