// rackd — which control client gives way when a pool's places are all taken (ControlAdmission): only one
// of the newcomer's own pool (root's are out of members' reach), one of the user and then the process
// holding the most places, an idle client before one whose request is in, the longest connected first.

import RackControl
import RackEngine
import Testing

@testable import RackDaemon

@Suite struct ControlAdmissionTests {
    let start = EngineInstant.seconds(100)
    let request = Array("{\"command\":\"status\"}\n".utf8)
    static let member = PeerCredentials(pid: 9, uid: 1000, gid: 1000, groups: [])
    static let root = PeerCredentials(pid: 8, uid: 0, gid: 0, groups: [])

    /// A client of its own process (pid = ticket) unless `pid` says otherwise.
    func client(_ ticket: UInt64, uid: UInt32, pid: Int32? = nil, acceptedAfter milliseconds: Int, requested: Bool = false) -> ControlExchange {
        var exchange = ControlExchange(ticket: ticket, peer: PeerCredentials(pid: pid ?? Int32(ticket), uid: uid, gid: uid, groups: []),
                                       now: start + .milliseconds(milliseconds))
        if requested { _ = exchange.received(request, now: start + .milliseconds(milliseconds)) }
        return exchange
    }

    /// `count` clients of `uid` from ticket `first`, accepted 1 ms apart from `after`.
    func pool(_ count: Int, uid: UInt32, first: UInt64, after: Int = 0) -> [ControlExchange] {
        (0..<count).map { client(first + UInt64($0), uid: uid, acceptedAfter: after + $0) }
    }

    @Test func nobodyGivesWayWhileThePoolHasRoom() {
        let clients = pool(ControlAdmission.memberPlaces - 1, uid: 1000, first: 1) + pool(ControlAdmission.rootPlaces - 1, uid: 0, first: 100)
        #expect(ControlAdmission.victim(for: Self.member, among: clients) == nil)
        #expect(ControlAdmission.victim(for: Self.root, among: clients) == nil)
    }

    @Test func theLongestIdleGivesWayFirst() {
        var clients = pool(ControlAdmission.memberPlaces, uid: 1000, first: 1, after: 10)
        clients.append(client(999, uid: 1000, acceptedAfter: 5))
        clients.removeFirst()
        #expect(ControlAdmission.victim(for: Self.member, among: clients) == 999)
    }

    @Test func anIdleClientGivesWayBeforeOneWithItsRequestIn() {
        var clients = pool(ControlAdmission.memberPlaces - 1, uid: 1000, first: 10, after: 50)
        clients.append(client(1, uid: 1000, acceptedAfter: 0, requested: true))
        #expect(ControlAdmission.victim(for: Self.member, among: clients) == 10)
        let allRequested = [client(1, uid: 0, acceptedAfter: 5, requested: true)]
            + (2...UInt64(ControlAdmission.rootPlaces)).map { client($0, uid: 0, acceptedAfter: 1, requested: true) }
        #expect(ControlAdmission.victim(for: Self.root, among: allRequested) == 2)
    }

    @Test func membersNeverTakeRootsPlacesNorRootMembers() {
        // Every member place taken, and root's pool full of idle clients older than all of them.
        let clients = pool(ControlAdmission.rootPlaces, uid: 0, first: 1) + pool(ControlAdmission.memberPlaces, uid: 1000, first: 100, after: 50)
        #expect(ControlAdmission.victim(for: Self.member, among: clients) == 100)
        #expect(ControlAdmission.victim(for: Self.root, among: clients) == 1)
    }

    @Test func finishedExchangesAreNotCandidates() {
        var clients = pool(ControlAdmission.rootPlaces, uid: 0, first: 1)
        _ = clients[0].hungUp()
        #expect(ControlAdmission.victim(for: Self.root, among: clients) == nil)
        clients.append(client(50, uid: 0, acceptedAfter: 99))
        #expect(ControlAdmission.victim(for: Self.root, among: clients) == 2)
    }

    /// A member's flood of idle connections, each newcomer taking the place it finds: the sleep hook's
    /// root client, idle for the moment, and a member's complete request both stay, and no pool ever holds
    /// more than its places.
    @Test func aFloodNeverPushesOutRootOrACompleteRequest() {
        var clients = [client(1, uid: 0, acceptedAfter: 0), client(2, uid: 1000, acceptedAfter: 1, requested: true)]
        var ticket: UInt64 = 3
        for arrival in 0..<1000 {
            if let victim = ControlAdmission.victim(for: Self.member, among: clients) {
                #expect(victim != 1 && victim != 2)
                clients.removeAll { $0.ticket == victim }
            }
            clients.append(client(ticket, uid: 1000, acceptedAfter: 2 + arrival))
            ticket += 1
            #expect(clients.count(where: { $0.peer.uid != 0 }) <= ControlAdmission.memberPlaces)
        }
        #expect(clients.contains { $0.ticket == 1 } && clients.contains { $0.ticket == 2 })
    }

    /// A client still reading survives as long as fewer than a pool's worth of newer clients arrive.
    @Test func aFreshClientOutlivesAPoolLessOneOfNewerArrivals() {
        var clients = pool(ControlAdmission.rootPlaces, uid: 0, first: 1)
        let fresh: UInt64 = 500
        clients.removeFirst()
        clients.append(client(fresh, uid: 0, acceptedAfter: 100))
        for arrival in 0..<(ControlAdmission.rootPlaces - 1) {
            let victim = ControlAdmission.victim(for: Self.root, among: clients)
            #expect(victim != nil && victim != fresh)
            clients.removeAll { $0.ticket == victim }
            clients.append(client(1000 + UInt64(arrival), uid: 0, acceptedAfter: 200 + arrival))
        }
        #expect(ControlAdmission.victim(for: Self.root, among: clients) == fresh)
    }

    /// One process's flood of root connections, all newer than another root process's idle client (a
    /// sleep hook's rackctl not yet read): the flood gives way to itself.
    @Test func theProcessHoldingTheMostPlacesGivesWayFirst() {
        var clients = [client(1, uid: 0, acceptedAfter: 0)]
        clients += (2...UInt64(ControlAdmission.rootPlaces)).map { client($0, uid: 0, pid: 77, acceptedAfter: 10 + Int($0)) }
        #expect(ControlAdmission.victim(for: Self.root, among: clients) == 2)
        var ticket: UInt64 = 100
        for arrival in 0..<200 {
            let victim = ControlAdmission.victim(for: Self.root, among: clients)
            #expect(victim != nil && victim != 1)
            clients.removeAll { $0.ticket == victim }
            clients.append(client(ticket, uid: 0, pid: 77, acceptedAfter: 100 + arrival))
            ticket += 1
        }
    }

    /// Among members, the user holding the most places gives way first, whatever its processes: another
    /// member's rackctl, older and idle, stays.
    @Test func theUserHoldingTheMostPlacesGivesWayFirst() {
        var clients = [client(1, uid: 1000, acceptedAfter: 0), client(2, uid: 1000, acceptedAfter: 1)]
        clients += (3...UInt64(ControlAdmission.memberPlaces)).map { client($0, uid: 4242, acceptedAfter: 10 + Int($0)) }
        #expect(ControlAdmission.victim(for: Self.member, among: clients) == 3)
        // With equal shares, the process, then the request, then age decide.
        // Half the places each; uid 1000's spread over two processes, uid 4242's in one, half of them requested.
        let even = (0..<ControlAdmission.memberPlaces).map { index in
            switch index % 4 {
            case 0: client(UInt64(index + 1), uid: 1000, pid: 5, acceptedAfter: index)
            case 1: client(UInt64(index + 1), uid: 4242, pid: 6, acceptedAfter: index)
            case 2: client(UInt64(index + 1), uid: 4242, pid: 6, acceptedAfter: index, requested: true)
            default: client(UInt64(index + 1), uid: 1000, pid: 7, acceptedAfter: index)
            }
        }
        #expect(ControlAdmission.victim(for: Self.member, among: even) == 2)
    }
}
