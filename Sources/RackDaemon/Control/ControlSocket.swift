// rackd — the control socket's file and its clients' credentials (unix-domain, SOCK_STREAM).
//
// Without a status group the file is mode 0600, so only root can connect at all. With one it is 0666 and
// rackd's own check decides: every client's credentials come from the kernel (SO_PEERCRED,
// SO_PEERGROUPS) and only root and the group's members are answered; anyone else is refused as soon as
// it is accepted, before rackd reads from it. (Giving the file the group instead would need CAP_CHOWN,
// which the hardened unit does not grant.)

import CLinuxNetlink
import RackControl

#if canImport(Glibc)
import Glibc
#endif

struct ControlSocket: ~Copyable {
    let descriptor: CInt
    let path: String

    /// Binds and listens at `path`, replacing a stale socket left by a rackd that died; refuses when
    /// another rackd answers there, or when something that is not a socket has the name.
    init(path: String, openToOthers: Bool) throws {
        try Self.prepareDirectory(of: path)
        try Self.removeStale(path)
        // Non-blocking: the control loop accepts until EAGAIN (ControlServer+Clients.swift).
        let fd = socket(AF_UNIX, CLNL_SOCK_STREAM | CLNL_SOCK_CLOEXEC | CLNL_SOCK_NONBLOCK, 0)
        guard fd >= 0 else { throw SystemError.current("socket(AF_UNIX)") }
        // No window in which the socket exists with a looser mode than the one it ends with.
        let previousMask = umask(0o177)
        let bound = UnixSocket.withAddress(path) { bind(fd, $0, $1) } ?? -1
        umask(previousMask)
        guard bound == 0 else {
            let error = SystemError.current("bind(\(path))")
            close(fd)
            throw error
        }
        if openToOthers {
            guard chmod(path, 0o666) == 0 else {
                let error = SystemError.current("chmod(\(path))")
                close(fd)
                unlink(path)
                throw error
            }
        }
        guard listen(fd, 16) == 0 else {
            let error = SystemError.current("listen(\(path))")
            close(fd)
            unlink(path)
            throw error
        }
        descriptor = fd
        self.path = path
    }

    deinit {
        close(descriptor)
        unlink(path)
    }

    /// The client's pid, uid, gid and supplementary groups, from the kernel.
    static func credentials(of client: CInt) throws -> PeerCredentials {
        var credentials = clnl_ucred()
        var length = socklen_t(MemoryLayout<clnl_ucred>.size)
        guard getsockopt(client, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 else {
            throw SystemError.current("getsockopt(SO_PEERCRED)")
        }
        var groups = [gid_t](repeating: 0, count: 256)
        var groupsLength = socklen_t(groups.count * MemoryLayout<gid_t>.size)
        // Supplementary groups as they were at connect(2); none if the kernel cannot say.
        let gotGroups = getsockopt(client, SOL_SOCKET, SO_PEERGROUPS, &groups, &groupsLength) == 0
        return PeerCredentials(
            pid: credentials.pid, uid: credentials.uid, gid: credentials.gid,
            groups: gotGroups ? Array(groups.prefix(Int(groupsLength) / MemoryLayout<gid_t>.size)) : [])
    }

    /// Creates the socket's directory (0755) when it is missing; systemd's RuntimeDirectory usually has.
    private static func prepareDirectory(of path: String) throws {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let directory = String(path[..<slash])
        var info = stat()
        if stat(directory, &info) == 0 { return }
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
            throw SystemError.current("mkdir(\(directory))")
        }
    }

    private static func removeStale(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw ControlSocketError.occupied(path)
        }
        // Someone answering there is another rackd: two would fight over the same queue and rules.
        let probe = socket(AF_UNIX, CLNL_SOCK_STREAM | CLNL_SOCK_CLOEXEC, 0)
        defer { close(probe) }
        if UnixSocket.withAddress(path, { connect(probe, $0, $1) }) == 0 { throw ControlSocketError.inUse(path) }
        unlink(path)
    }
}

enum ControlSocketError: Error, CustomStringConvertible {
    case occupied(String)
    case inUse(String)

    var description: String {
        switch self {
        case .occupied(let path): "\(path) exists and is not a socket; remove it or set [control] socket elsewhere"
        case .inUse(let path): "another rackd answers on \(path); stop it first (systemctl stop rackd)"
        }
    }
}
