// rackd — who may ask rackd what (docs/control.md, "Who may do what"). rackd learns each client's credentials from the kernel
// (SO_PEERCRED, SO_PEERGROUPS) and decides here, whatever the socket file's mode says.

/// A control client as the kernel describes it.
public struct PeerCredentials: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
    /// Supplementary groups.
    public var groups: [UInt32]

    public init(pid: Int32, uid: UInt32, gid: UInt32, groups: [UInt32]) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }
}

public enum ControlAccess {
    public enum Decision: Sendable, Equatable {
        case allowed
        case denied(String)
    }

    /// Root may do everything; members of the status group (primary or supplementary) may read status.
    public static func decide(_ request: ControlRequest, from peer: PeerCredentials, statusGroup: UInt32?)
        -> Decision
    {
        if peer.uid == 0 { return .allowed }
        let inStatusGroup = statusGroup.map { peer.gid == $0 || peer.groups.contains($0) } ?? false
        if !request.changesState && inStatusGroup { return .allowed }
        if request.changesState {
            return .denied("'\(request.command.rawValue)' needs root; run it with sudo")
        }
        return .denied("status needs root, or membership of the group named by status-group in rackd.conf")
    }
}
