// rackd — the `[rocks]` section: whether and where rackd speaks the rocks 2.4 protocol
// (docs/configuration.md, `[rocks]`; docs/rocks.md).
//
// Everything is off by default: rocks' 128-bit Diffie-Hellman and Blowfish are broken by today's
// standards, so a user must ask for them (`legacy-auth = yes`), and an ordinary server must never pay
// for a probe it did not ask for.

/// Where rackd, as a client, probes for rocks servers (the Enhancement Detection Protocol, docs/rocks.md §2.2).
public enum RocksProbing: String, Sendable, CaseIterable {
    /// Never: rocks servers are ordinary servers.
    case off
    /// Destinations matching `probe-addresses` and `probe-ports` (either list may be empty, not both).
    case listed
    /// Every destination that did not answer rackd's SYN option, once; negative answers are cached.
    case everywhere
}

/// The `[rocks]` section.
public struct RocksSettings: Sendable, Equatable {
    /// Whether rocks peers may be enhanced at all. Off: they are ordinary peers, and nothing is probed or
    /// answered.
    public var legacyAuthentication = false
    public var probing: RocksProbing = .off
    /// `listed`: destination addresses to probe (empty: any address whose port is listed).
    public var probeAddresses: [AddressPrefix] = []
    /// `listed`: destination ports to probe (empty: any port of a listed address).
    public var probePorts: [PortRange] = []
    /// Local server ports whose clients may be rocks: probes there are answered as a rocks server would.
    public var servePorts: [PortRange] = []
    /// The UDP port rackd takes rocks heartbeats on; 0 picks a free one at start (the daemon writes the
    /// bound port back here before the engine starts).
    public var heartbeatPort: UInt16 = 0
    /// The TCP port of rackd's rocks reconnection address; 0 picks a free one at start.
    public var reconnectionPort: UInt16 = 0
    /// How long a destination that failed a probe is left unprobed.
    public var negativeCacheLifetime: Duration = .seconds(3600)
    /// How long one read of the probe waits (rocks: 500 ms).
    public var probeReadTimeout: Duration = .milliseconds(500)
    /// Whether rackd may have conntrack carry the sequence shift of a rocks server's and a reconnected
    /// rocks connection (Core/KernelShift.swift). That needs conntrack to track every flow of the host;
    /// no keeps conntrack out of it, and those connections queued.
    public var conntrack = true

    public init() {}

    /// Whether rocks is in use at all.
    public var isEnabled: Bool { legacyAuthentication && (probing != .off || !servePorts.isEmpty) }

    /// Whether a connection to `destination` is one to probe in `listed` mode.
    public func lists(_ destination: TCPEndpoint) -> Bool {
        guard !probeAddresses.isEmpty || !probePorts.isEmpty else { return false }
        if !probeAddresses.isEmpty && !probeAddresses.contains(where: { $0.contains(destination.address) }) { return false }
        if !probePorts.isEmpty && !probePorts.contains(where: { $0.contains(destination.port) }) { return false }
        return true
    }

    /// The local server ports whose clients' SYNs rackd must see though they carry no rackd option: the
    /// serve ports (a rocks client shows itself only by its first bytes) and, when rocks is in use, the
    /// reconnection port (rocks links have no socket: the engine answers their SYNs).
    public var portsTakingPlainSYNs: [PortRange] {
        guard legacyAuthentication else { return [] }
        return servePorts + (isEnabled && reconnectionPort != 0 ? [PortRange(reconnectionPort)] : [])
    }

    /// Whether a local server port answers rocks probes.
    public func serves(_ port: UInt16) -> Bool {
        legacyAuthentication && servePorts.contains { $0.contains(port) }
    }
}
