// rackd — what to do with the descriptors systemd hands back from its file-descriptor store at start
// (sd_listen_fds_with_names(3)): the pure part, with no descriptor touched, so that it can be tested.
//
// rackd stores a socket under a name (SystemdNotifier.store). After a restart systemd hands every stored
// descriptor back with its name; systemd keeps its own copies, so a descriptor rackd adopts stays stored
// and needs nothing more. What rackd no longer wants (a name it does not store now, a second descriptor
// under a name, a socket that does not fit the configuration) is closed and its name removed from the
// store (FDSTOREREMOVE=1), or the store would keep the old socket, and its port, for as long as the unit runs.

/// One descriptor systemd handed over, and the name it was stored under (FDNAME=).
public struct StoredDescriptor: Equatable, Sendable {
    public var descriptor: CInt
    public var name: String

    public init(descriptor: CInt, name: String) {
        self.descriptor = descriptor
        self.name = name
    }

    /// FDNAME= as systemd accepts it (sd_pid_notify_with_fds(3)): 1 to 255 printable ASCII characters,
    /// no ':' (LISTEN_FDNAMES separates names with it).
    static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return (1...255).contains(bytes.count) && bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }
    }
}

/// The handed-over descriptors sorted by the names rackd stores now.
struct StoredDescriptorSorting: Equatable {
    /// For each name rackd wants, the descriptors under it, in the order systemd handed them.
    var wanted: [String: [CInt]] = [:]
    /// Descriptors under names rackd does not store now: to close, and their names to remove.
    var unwanted: [StoredDescriptor] = []

    init(_ handed: [StoredDescriptor], wanted names: Set<String>) {
        for stored in handed {
            if names.contains(stored.name) {
                wanted[stored.name, default: []].append(stored.descriptor)
            } else {
                unwanted.append(stored)
            }
        }
    }

    /// The names to remove from the store: each unwanted name once, in the order handed.
    var unwantedNames: [String] {
        var seen: Set<String> = []
        return unwanted.map(\.name).filter { seen.insert($0).inserted }
    }
}

/// What to do for one stored socket name, given what systemd handed back under it.
enum StoredSocketChoice: Equatable {
    /// Use this descriptor instead of binding; close the others. With `storeAgain`, the store held more
    /// than this one under the name: remove the name, then store this descriptor again.
    case adopt(CInt, close: [CInt], storeAgain: Bool)
    /// Bind anew and store the new socket; close what was handed. With `removeName`, the store holds
    /// descriptors under the name that must go first.
    case bind(close: [CInt], removeName: Bool)

    /// `candidates`: the descriptors handed under the name, each with the port it is bound to, or nil when
    /// it is not a socket of the expected kind (family, type). The first that is bound to `configured`
    /// wins; with `configured` 0 (any port) the first of the expected kind wins, whatever its port: the
    /// rocks peers of the last run know that port.
    static func choose(from candidates: [(descriptor: CInt, port: UInt16?)], configured: UInt16) -> StoredSocketChoice {
        let fits = candidates.firstIndex { candidate in
            guard let port = candidate.port, port != 0 else { return false }
            return configured == 0 || port == configured
        }
        guard let fits else {
            return .bind(close: candidates.map(\.descriptor), removeName: !candidates.isEmpty)
        }
        let others = candidates.indices.filter { $0 != fits }.map { candidates[$0].descriptor }
        return .adopt(candidates[fits].descriptor, close: others, storeAgain: !others.isEmpty)
    }
}
