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

    /// At accept, before the request is read: whoever may ask anything is admitted, nobody else.
    @Test func admissionComesBeforeTheRequest() {
        #expect(ControlAccess.admit(root, statusGroup: nil) == .allowed)
        #expect(ControlAccess.admit(root, statusGroup: 4) == .allowed)
        #expect(ControlAccess.admit(member, statusGroup: 27) == .allowed)  // supplementary
        #expect(ControlAccess.admit(member, statusGroup: 1000) == .allowed)  // primary
        #expect(ControlAccess.admit(member, statusGroup: nil) != .allowed)
        guard case .denied(let reason) = ControlAccess.admit(stranger, statusGroup: 4) else {
            Issue.record("a stranger was admitted")
            return
        }
        #expect(reason.hasPrefix("status needs root"))
    }

    /// Whoever `decide` allows anything is admitted: admission never refuses a client a request would let through.
    @Test func admissionAdmitsEveryoneDecideWouldAllowSomething() {
        let peers = [member, stranger, root, PeerCredentials(pid: 12, uid: 5, gid: 4, groups: [])]
        for peer in peers {
            for group in [nil, 4, 27, 1001] as [UInt32?] {
                let allowedSomething = [ControlRequest.status, .suspend(id: nil), .resume(id: 1)].contains {
                    ControlAccess.decide($0, from: peer, statusGroup: group) == .allowed
                }
                #expect((ControlAccess.admit(peer, statusGroup: group) == .allowed) == allowedSomething, "uid \(peer.uid) group \(String(describing: group))")
            }
        }
    }
}
