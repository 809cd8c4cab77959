// rackd — how many control clients rackd holds at once, and which one gives way when a new one comes and
// its places are all taken. Pure, so that the unit tests can check the choice without sockets.
//
// The places exist only for the clients rackd admits (root and, with [control] status-group, the group's
// members: ControlAccess.admit); anyone else is refused at accept and takes none. They come in two pools,
// 64 for the group's members and 16 kept for root, and a newcomer only ever takes a place in its own
// pool: however many connections members hold open, they cannot touch root's, so the sleep hook's
// `rackctl suspend --all` (root) always finds its place. rackctl clients are rare and quick (a person,
// the sleep hook, a monitoring script), so 64 members' clients at once means someone holds connections
// open on purpose, and 16 of root's is more than root ever runs at once. Each place costs a descriptor,
// at most 4 KiB of request and one answer, and a slot in poll(2): 80 of them stay far from the
// descriptor limit and cost little memory.
//
// A newcomer always gets in, so holding connections open cannot keep a client out. When its pool is full,
// whoever holds the most places gives one up: the place is taken from the user holding the most places of
// the pool, and among that user's from the process holding the most (the kernel names both at connect:
// SO_PEERCRED), so a flood from one user, or from one process of root's, pushes out its own connections
// and not another's one `rackctl`. Among the clients that are left, one that has not sent its whole
// request (idle and trickling clients) goes before one that has (it is about to be done), and the one
// connected longest goes first.

import RackControl
import RackEngine

enum ControlAdmission {
    /// Places for the status group's members.
    static let memberPlaces = 64
    /// Places for root, which no member's client can take.
    static let rootPlaces = 16

    /// The places of the pool `peer` belongs to.
    static func places(for peer: PeerCredentials) -> Int {
        peer.uid == 0 ? rootPlaces : memberPlaces
    }

    /// The ticket of the exchange that gives way to a newcomer from `peer`, by the order above; nil when
    /// its pool has a free place.
    static func victim(for newcomer: PeerCredentials, among exchanges: some Collection<ControlExchange>) -> UInt64? {
        let pool = exchanges.filter { !$0.isDone && ($0.peer.uid == 0) == (newcomer.uid == 0) }
        guard pool.count >= places(for: newcomer) else { return nil }
        var placesOfUser: [UInt32: Int] = [:]
        var placesOfProcess: [Int32: Int] = [:]
        for exchange in pool {
            placesOfUser[exchange.peer.uid, default: 0] += 1
            placesOfProcess[exchange.peer.pid, default: 0] += 1
        }
        func rank(_ exchange: ControlExchange) -> Rank {
            Rank(userPlaces: placesOfUser[exchange.peer.uid] ?? 0, processPlaces: placesOfProcess[exchange.peer.pid] ?? 0,
                 hasRequest: exchange.hasRequest, acceptedAt: exchange.acceptedAt)
        }
        return pool.min { rank($0) < rank($1) }?.ticket
    }

    /// Lower gives way first.
    private struct Rank: Comparable {
        let userPlaces: Int
        let processPlaces: Int
        let hasRequest: Bool
        let acceptedAt: EngineInstant

        static func < (lhs: Rank, rhs: Rank) -> Bool {
            if lhs.userPlaces != rhs.userPlaces { return lhs.userPlaces > rhs.userPlaces }
            if lhs.processPlaces != rhs.processPlaces { return lhs.processPlaces > rhs.processPlaces }
            if lhs.hasRequest != rhs.hasRequest { return !lhs.hasRequest }
            return lhs.acceptedAt < rhs.acceptedAt
        }
    }
}
