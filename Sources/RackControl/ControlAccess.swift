// rackd — who may ask rackd what (docs/control.md, "Who may do what"). rackd learns each client's credentials from the kernel
// (SO_PEERCRED, SO_PEERGROUPS) and decides here, whatever the socket file's mode says: first, at accept,
// whether the client may ask anything at all (`admit`: a stranger is refused before rackd reads a byte
// of it, so it holds none of the control loop's places), then, once its request is read, whether it may
// ask that (`decide`).

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

    /// Whether the client may ask anything at all: root, and members of the status group. Decided from the
    /// credentials alone, before the request is read; what `decide` allows is always admitted here.
    public static func admit(_ peer: PeerCredentials, statusGroup: UInt32?) -> Decision {
        if peer.uid == 0 || isMember(peer, of: statusGroup) { return .allowed }
        return .denied(
            "status needs root, or membership of the group named by status-group in rackd.conf; "
                + "suspend and resume need root")
    }

    /// Root may do everything; members of the status group (primary or supplementary) may read status.
    public static func decide(_ request: ControlRequest, from peer: PeerCredentials, statusGroup: UInt32?)
        -> Decision
    {
        if peer.uid == 0 { return .allowed }
        if !request.changesState && isMember(peer, of: statusGroup) { return .allowed }
        if request.changesState {
            return .denied("'\(request.command.rawValue)' needs root; run it with sudo")
        }
        return .denied("status needs root, or membership of the group named by status-group in rackd.conf")
    }

    private static func isMember(_ peer: PeerCredentials, of statusGroup: UInt32?) -> Bool {
        statusGroup.map { peer.gid == $0 || peer.groups.contains($0) } ?? false
    }
}
