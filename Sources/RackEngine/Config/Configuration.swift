// rackd — the daemon's configuration, as a value.
//
// Parsing lives in `ConfigurationParser`; this file only says what can be configured and what the
// defaults are. The defaults are what rackd runs with when no file is given (docs/configuration.md).

/// Everything `rackd.conf` can set.
public struct Configuration: Sendable, Equatable {
    /// What rackd does with the connections it sees.
    public enum Mode: String, Sendable, CaseIterable {
        /// Detect rackd peers and keep their connections alive (the product).
        case racks
        /// Queue every packet of every new TCP connection and accept it unchanged. A diagnostic and
        /// benchmark mode: it measures what the queue costs and proves the data path loses nothing.
        case passthrough
    }

    /// Which nftables expression sends packets to the queue.
    public enum RulesVariant: String, Sendable, CaseIterable {
        /// Try the native `queue` statement, fall back to the xtables-compat NFQUEUE target.
        case auto
        /// Only the native `queue` statement (needs the kernel's nft_queue).
        case native
        /// Only the xtables-compat NFQUEUE target (needs nft_compat and xt_NFQUEUE).
        case compat
    }

    public var mode: Mode = .racks
    /// The NFQUEUE number rackd binds and its rules send packets to.
    public var queueNumber: UInt16 = 3939
    /// The most packets the kernel holds for rackd before it drops new ones.
    public var queueMaxLength: UInt32 = 8192
    /// The firewall mark rackd puts on the packets it injects; its own rules let them pass.
    public var firewallMark: UInt32 = 0x1000_0000
    public var rules: RulesVariant = .auto

    /// How often a quiet path is probed (its sentinel; the other connections on it every
    /// `memberCheckInterval`).
    public var heartbeatInterval: Duration = .seconds(1)
    /// Probes that may go unanswered before the path is declared failed. With the defaults a black
    /// hole is detected within 2.5 s of the last packet heard (`interval × misses + interval / 2`).
    public var heartbeatMisses: Int = 2
    /// How long a suspended connection is held before rackd gives it up (7 days by default;
    /// docs/configuration.md, `[suspension] maximum`).
    public var maximumSuspension: Duration = .seconds(7 * 24 * 3600)
    /// Which connections to manage.
    public var policy = Policy()
    /// How long a destination that answered rackd's hello without one is left unqueued (`[policy]
    /// ordinary-cache`; zero: never cached, every handshake is queued).
    public var ordinaryCacheLifetime: Duration = .seconds(600)
    /// At most this many suspended connections to one peer address; past it the oldest is closed.
    public var maximumSuspendedPerPeer = 64
    /// At most this many suspended connections in all; past it the oldest is closed.
    public var maximumSuspendedTotal = 1024

    /// Where rackd serves `rackctl`.
    public var controlSocketPath = "/run/rackd/rackd.sock"
    /// Where rackd keeps its connections across its own restarts (docs/restarts.md); `--state-directory`.
    public var stateDirectory = "/run/rackd/state"
    /// A group whose members may read status (`rackctl status`); none by default: root only.
    public var statusGroup: StatusGroup?
    /// Rocks 2.4 peers (`[rocks]`); off by default.
    public var rocks = RocksSettings()
    /// Whether the kernel can carry a rocks connection's constant sequence shift (conntrack's seqadj over
    /// ctnetlink, and the queue's per-packet conntrack status: Core/KernelShift.swift). Not a setting: the
    /// daemon finds it out at start; without it such connections stay queued.
    public var kernelShiftsAvailable = false

    public init() {}

    /// Silence after which a connection is declared failed.
    public var failureTimeout: Duration { heartbeatInterval * heartbeatMisses + heartbeatInterval / 2 }

    /// How often a connection that shares its wire path with a sentinel is read, and at most how often it is
    /// probed: the sentinel, read every heartbeat interval, watches the path for all of them
    /// (docs/architecture.md, "Liveness at scale").
    public var memberCheckInterval: Duration { heartbeatInterval * 5 }
}

/// The group `[control] status-group` names, and its id once the daemon has looked it up.
public struct StatusGroup: Sendable, Equatable {
    public var name: String
    public var id: UInt32?

    public init(name: String, id: UInt32? = nil) {
        self.name = name
        self.id = id
    }
}
