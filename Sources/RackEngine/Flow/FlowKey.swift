// rackd — how a connection is named: its local and remote endpoints.

/// Which way a packet travels relative to this host.
public enum PacketDirection: Sendable, Equatable {
    /// Sent by a local socket (netfilter LOCAL_OUT).
    case outbound
    /// Arriving for a local socket (netfilter LOCAL_IN).
    case inbound
}

/// A TCP connection as this host sees it. The same key names both directions of the connection.
public struct FlowKey: Hashable, Sendable, CustomStringConvertible, Codable {
    public var local: TCPEndpoint
    public var remote: TCPEndpoint

    public init(local: TCPEndpoint, remote: TCPEndpoint) {
        self.local = local
        self.remote = remote
    }

    /// The key of a packet from `source` to `destination` travelling in `direction`.
    public init(source: TCPEndpoint, destination: TCPEndpoint, direction: PacketDirection) {
        switch direction {
        case .outbound: self.init(local: source, remote: destination)
        case .inbound: self.init(local: destination, remote: source)
        }
    }

    public var description: String { "\(local)-\(remote)" }
}
