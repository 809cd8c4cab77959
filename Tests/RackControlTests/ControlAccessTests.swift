import RackControl
import Testing

@Suite struct ControlAccessTests {
    let member = PeerCredentials(pid: 10, uid: 1000, gid: 1000, groups: [4, 27])
    let stranger = PeerCredentials(pid: 11, uid: 1001, gid: 1001, groups: [100])
    let root = PeerCredentials(pid: 1, uid: 0, gid: 0, groups: [])

    @Test func rootMayDoEverything() {
        for request in [ControlRequest.status, .suspend(id: nil), .resume(id: 3)] {
            #expect(ControlAccess.decide(request, from: root, statusGroup: nil) == .allowed)
        }
    }

    @Test func statusGroupMembersMayReadStatusOnly() {
        #expect(ControlAccess.decide(.status, from: member, statusGroup: 4) == .allowed)
        #expect(ControlAccess.decide(.status, from: member, statusGroup: 1000) == .allowed)  // primary group
        guard case .denied(let reason) = ControlAccess.decide(.suspend(id: nil), from: member, statusGroup: 4) else {
            Issue.record("a status-group member suspended connections")
            return
        }
        #expect(reason.contains("needs root"))
        #expect(ControlAccess.decide(.resume(id: 1), from: member, statusGroup: 4) != .allowed)
    }

    @Test func othersAreRefusedEverything() {
        #expect(ControlAccess.decide(.status, from: stranger, statusGroup: 4) != .allowed)
        #expect(ControlAccess.decide(.status, from: member, statusGroup: nil) != .allowed)
        #expect(ControlAccess.decide(.suspend(id: 2), from: stranger, statusGroup: nil) != .allowed)
    }
}
