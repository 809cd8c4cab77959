// rackd — the racks protocol between two engines: detection, keys, heartbeat, suspension, resumption,
// and every rejection path, replayed in virtual time.

import Testing
@testable import RackEngine

@Suite struct RacksDetectionTests {
    @Test func bothRackdsAgreeKeysAndQueueNothing() throws {
        var pair = RacksPair()
        try pair.connect()
        #expect(pair.phase(.a) == .healthy)
        #expect(pair.phase(.b) == .healthy)
        #expect(pair.a.connections.first?.role == .client)
        #expect(pair.b.connections.first?.role == .server)
        // Healthy connections stay out of the queue. The client's flow was never queued; the server's
        // only from the SYN with the hello until the key exchange was done, so that its SYN-ACK (and any
        // retransmission of it) reached rackd to get the hello (RackdRuleset+Ordinary.swift).
        #expect(pair.rulesA.isEmpty)
        #expect(pair.rulesB == [.manage(pair.flowB), .release(pair.flowB)])
        #expect(pair.eventsA.contains(.connectionManaged(id: 1, pair.flowA, role: .client, peerKind: "rackd")))
    }

    @Test func theServerQueuesAHelloSYNsFlowUntilItsSYNACKIsDecorated() throws {
        var pair = RacksPair()
        let synOutput = try pair.run(pair.syn(), .outbound, on: .a)
        let decoratedSYN = try #require(pair.replacement(of: synOutput))
        let atSYN = try pair.run(try pair.parse(decoratedSYN), .inbound, on: .b)
        #expect(atSYN.ruleChanges == [.manage(pair.flowB)])
        // The SYN-ACK reaches rackd (the flow is queued) and gets the hello; the connection, establishing,
        // keeps the flow queued, so no rule changes.
        let atSYNACK = try pair.run(pair.synAck(), .outbound, on: .b)
        #expect(pair.replacement(of: atSYNACK) != nil)
        #expect(atSYNACK.ruleChanges.isEmpty)
        // The same SYN-ACK again, the socket retransmitting it before the key exchange: the hello again.
        #expect(pair.replacement(of: try pair.run(pair.synAck(), .outbound, on: .b)) != nil)
    }

    /// The client's first key message shows that it had the hello: the server's flow leaves the queue then,
    /// before the key exchange is done (a SYN-ACK the socket sends after it no longer reaches rackd).
    @Test func theServerReleasesTheFlowAtTheClientsFirstKeyMessage() throws {
        var pair = RacksPair()
        let decoratedSYN = try #require(pair.replacement(of: try pair.run(pair.syn(), .outbound, on: .a)))
        _ = try pair.run(try pair.parse(decoratedSYN), .inbound, on: .b)
        let decoratedSYNACK = try #require(pair.replacement(of: try pair.run(pair.synAck(), .outbound, on: .b)))
        #expect(pair.rulesB == [.manage(pair.flowB)])
        pair.dropBToA = true  // B's answers are lost: B has the client's key, the exchange is not done
        _ = try pair.run(try pair.parse(decoratedSYNACK), .inbound, on: .a)
        #expect(pair.phase(.b) == .keyExchange)
        #expect(pair.rulesB == [.manage(pair.flowB), .release(pair.flowB)])
        #expect(!pair.b.kernelFlows.queued.contains(pair.flowB))
        // A SYN-ACK without the hello after A's connection started changes nothing on A.
        let plainAtA = try pair.run(pair.synAck(), .inbound, on: .a)
        #expect(plainAtA.verdict == .accept)
        #expect(!pair.eventsA.contains { if case .fellBack = $0 { return true }; return false })
        pair.dropBToA = false
        try pair.advance(by: RackdPeer.keyRetransmitInterval * 2)
        #expect(pair.phase(.a) == .healthy)
        #expect(pair.phase(.b) == .healthy)
    }

    @Test func aHelloSYNThatGetsNoSYNACKStopsBeingQueuedWhenItExpires() throws {
        var pair = RacksPair()
        let decoratedSYN = try #require(pair.replacement(of: try pair.run(pair.syn(), .outbound, on: .a)))
        pair.pathUp = false  // nothing B sends reaches A
        _ = try pair.run(try pair.parse(decoratedSYN), .inbound, on: .b)
        #expect(pair.rulesB == [.manage(pair.flowB)])
        try pair.advance(by: RackdPeer.pendingLifetime + .seconds(1), step: .seconds(1))
        #expect(pair.rulesB == [.manage(pair.flowB), .release(pair.flowB)])
        #expect(pair.b.connections.isEmpty)
    }

    @Test func aSYNWithoutTheHelloIsNotQueued() throws {
        var pair = RacksPair()
        let output = try pair.run(pair.syn(), .inbound, on: .b)
        #expect(output.verdict == .accept)
        #expect(output.ruleChanges.isEmpty)
        #expect(pair.replacement(of: try pair.run(pair.synAck(), .outbound, on: .b)) == nil)
        #expect(pair.rulesB.isEmpty)
    }

    @Test func synGetsExactlyTheHelloOption() throws {
        var pair = RacksPair()
        let original = try emitted(pair.syn())
        let output = try pair.run(pair.syn(), .outbound, on: .a)
        let decorated = try #require(pair.replacement(of: output))
        #expect(decorated.count == original.count + 8)
        let parsed = try pair.parse(decorated)
        #expect(parsed.options.filter { $0 != .noOperation } == RacksPair.synOptions.filter { $0 != .noOperation }
            + [RacksMessage.hello(version: 1).option])
        let verifies = try decorated.withUnsafeBytes { try IPPacketView(validating: $0).verifyChecksums(tcpChecksum: .complete) }
        #expect(verifies)
    }

    @Test func ordinaryPeerIsLeftToPlainTCP() throws {
        var pair = RacksPair()
        _ = try pair.run(pair.syn(), .outbound, on: .a)
        // B runs no rackd: its SYN-ACK carries no hello.
        let output = try pair.run(pair.synAck(), .inbound, on: .a)
        #expect(output.verdict == .accept)
        #expect(output.transmits.isEmpty)
        #expect(pair.a.connections.isEmpty)
        #expect(pair.eventsA == [.fellBack(pair.flowA, reason: "peer does not run rackd")])
    }

    @Test func aSYNLostOnceIsRetriedWithTheOption() throws {
        var pair = RacksPair()
        _ = try pair.run(pair.syn(), .outbound, on: .a)
        // The first SYN was lost on the way: its retransmission carries the hello again, and the
        // connection is managed when it is answered.
        let retry = try pair.run(pair.syn(), .outbound, on: .a)
        let decorated = try #require(pair.replacement(of: retry))
        #expect(try pair.run(try pair.parse(decorated), .inbound, on: .b).verdict == .accept)
        let synAck = try #require(pair.replacement(of: try pair.run(pair.synAck(), .outbound, on: .b)))
        _ = try pair.run(try pair.parse(synAck), .inbound, on: .a)
        try pair.advance(by: .milliseconds(50))
        #expect(pair.phase(.a) == .healthy && pair.phase(.b) == .healthy)
        #expect(!pair.eventsA.contains { if case .fellBack = $0 { true } else { false } })
    }

    @Test func twiceUnansweredSYNIsRetriedWithoutTheOptionAndAnAnswerMarksTheDestination() throws {
        var pair = RacksPair()
        _ = try pair.run(pair.syn(), .outbound, on: .a)
        #expect(pair.replacement(of: try pair.run(pair.syn(), .outbound, on: .a)) != nil)
        let plain = try pair.run(pair.syn(), .outbound, on: .a)
        #expect(plain.verdict == .accept)
        #expect(pair.eventsA.contains(.fellBack(pair.flowA, reason: "2 SYNs with rackd's option went unanswered; retrying without it")))
        var another = pair.syn()
        another.source.port = 40_001
        another.sequenceNumber = TCPSequenceNumber(777)
        // Until the plain SYN is answered, nothing says the option was the problem: a new connection
        // to the destination still tries it.
        #expect(pair.replacement(of: try pair.run(another, .outbound, on: .a)) != nil)
        // The plain SYN is answered (a middlebox dropped the SYNs with the option): the destination's
        // next connections go out untouched.
        _ = try pair.run(pair.synAck(), .inbound, on: .a)
        another.source.port = 40_002
        #expect(try pair.run(another, .outbound, on: .a).verdict == .accept)
    }

    @Test func aNewConnectionOnTheSameTupleReplacesTheOldOne() throws {
        var pair = RacksPair()
        try pair.connect()
        // B's socket closes and B's rackd lets the connection go; A's has not looked yet when the
        // application reconnects from the same port.
        pair.socketB.exists = false
        try pair.advance(by: .milliseconds(1500))
        #expect(pair.b.connections.isEmpty && pair.a.connections.count == 1)
        pair.socketB.exists = true
        pair.exchangeTraffic()  // the new sockets have just heard each other's handshake
        pair.socketA.isn = TCPSequenceNumber(3000)
        pair.socketB.isn = TCPSequenceNumber(9000)
        try pair.connect()
        #expect(pair.a.connections.map(\.id) == [2])
        #expect(pair.b.connections.count == 1)
        #expect(pair.phase(.a) == .healthy && pair.phase(.b) == .healthy)
        // The replaced connection left no timer behind: a black hole suspends one connection, not two.
        pair.pathUp = false
        try pair.advance(by: .seconds(4))
        #expect(pair.a.connections.count == 1)
    }

    @Test func aNewerHandshakeOnTheSameTupleGetsItsOwnLifetime() throws {
        var pair = RacksPair()
        _ = try pair.run(pair.syn(), .outbound, on: .a)
        try pair.advance(by: .seconds(25))
        // A new connection from the same port, with a new ISN, 25 s into the first one's 30 s.
        pair.socketA.isn = TCPSequenceNumber(3000)
        let decoratedSYN = try #require(pair.replacement(of: try pair.run(pair.syn(), .outbound, on: .a)))
        try pair.advance(by: .milliseconds(5_500))
        _ = try pair.run(try pair.parse(decoratedSYN), .inbound, on: .b)
        let decoratedSYNACK = try #require(pair.replacement(of: try pair.run(pair.synAck(), .outbound, on: .b)))
        _ = try pair.run(try pair.parse(decoratedSYNACK), .inbound, on: .a)
        try pair.advance(by: .milliseconds(50))
        #expect(pair.eventsA.contains(.connectionManaged(id: 1, pair.flowA, role: .client, peerKind: "rackd")))
    }

    @Test func excludedPortsAndAuthenticatedConnectionsAreNotTouched() throws {
        var configuration = Configuration()
        configuration.policy.excludePorts = [PortRange(22)]
        var pair = RacksPair(configuration: configuration)
        #expect(try pair.run(pair.syn(), .outbound, on: .a).verdict == .accept)

        var md5 = RacksPair()
        var syn = md5.syn()
        syn.options.append(.unknown(kind: TCPOptionKind(rawValue: 19), data: TCPOptionData([UInt8](repeating: 0, count: 16))!))
        #expect(try md5.run(syn, .outbound, on: .a).verdict == .accept)
    }

    @Test func keyExchangeSurvivesLoss() throws {
        var pair = RacksPair()
        pair.dropAToB = true
        try pair.connect()
        try pair.advance(by: .milliseconds(600))
        #expect(pair.phase(.a) == .keyExchange)
        pair.dropAToB = false
        try pair.advance(by: .milliseconds(500))
        #expect(pair.phase(.a) == .healthy)
        #expect(pair.phase(.b) == .healthy)
    }

    @Test func keyExchangeThatNeverCompletesFallsBack() throws {
        var pair = RacksPair()
        pair.dropAToB = true
        pair.dropBToA = true
        try pair.connect()
        try pair.advance(by: .seconds(6))
        #expect(pair.a.connections.isEmpty)
        #expect(pair.eventsA.contains(.fellBack(pair.flowA, reason: "key exchange did not complete")))
        #expect(pair.rulesA.isEmpty)
    }
}

@Suite struct RacksHeartbeatTests {
    @Test func idleHealthyConnectionIsProbedAndStaysHealthy() throws {
        var pair = RacksPair()
        try pair.connect()
        try pair.advance(by: .seconds(30))
        #expect(pair.phase(.a) == .healthy)
        #expect(pair.rulesA.isEmpty)
    }

    @Test func blackHoleIsDetectedWithinThreeSeconds() throws {
        var pair = RacksPair()
        try pair.connect()
        try pair.advance(by: .seconds(5))
        pair.exchangeTraffic()
        let outageStart = pair.now
        pair.pathUp = false
        var detectedAt: EngineInstant?
        while detectedAt == nil && pair.now.duration(since: outageStart) < .seconds(10) {
            try pair.advance(by: .milliseconds(50))
            if pair.phase(.a) == .suspended { detectedAt = pair.now }
        }
        let detection = try #require(detectedAt).duration(since: outageStart)
        #expect(detection <= .seconds(3))
        #expect(pair.rulesA == [.manage(pair.flowA)])
    }

    @Test func linkDownSuspendsAtOnce() throws {
        var pair = RacksPair()
        try pair.connect()
        let output = pair.a.handleLinkEvent(.addressesLost([RacksPair.addressA]), now: pair.now)
        #expect(output.ruleChanges == [.manage(pair.flowA)])
        #expect(pair.a.connections.first?.phase == .suspended)
    }

    @Test func closedSocketEndsManagement() throws {
        var pair = RacksPair()
        try pair.connect()
        pair.socketA.exists = false
        // An idle healthy connection's socket is read when its silence reaches the heartbeat interval.
        try pair.advance(by: .milliseconds(1500))
        #expect(pair.a.connections.isEmpty)
        #expect(pair.eventsA.contains(.connectionEnded(id: 1, pair.flowA, reason: "socket closed")))
    }
}

@Suite struct RacksSuspensionTests {
    /// Both ends suspended by a black hole, each with a snapshot taken after queueing began.
    static func suspendedPair() throws -> RacksPair {
        var pair = RacksPair()
        try pair.connect()
        pair.socketA.bytesAcked = 1 + 5000
        pair.socketA.bytesReceived = 7000
        pair.socketB.bytesAcked = 7000
        pair.socketB.bytesReceived = 5000
        pair.exchangeTraffic()
        pair.pathUp = false
        try pair.advance(by: .seconds(4))
        #expect(pair.phase(.a) == .suspended)
        #expect(pair.phase(.b) == .suspended)
        return pair
    }

    @Test func retransmissionIsDroppedAndAnsweredWithAZeroWindow() throws {
        var pair = try Self.suspendedPair()
        // The socket's snd_una is ISN + bytes_acked (the client's count includes the SYN).
        let sendUnacknowledged = pair.socketA.isn + 5001
        let receiveNext = pair.socketB.isn + 1 + 7000
        let retransmission = TCPSegmentRepr(
            source: pair.clientEnd, destination: pair.serverEnd, sequenceNumber: sendUnacknowledged,
            acknowledgmentNumber: receiveNext, flags: [.ack, .psh], window: 500,
            options: [.noOperation, .noOperation, .timestamps(value: 9000, echo: 4000)],
            payload: [UInt8](repeating: 0x61, count: 3000))
        let output = try pair.run(retransmission, .outbound, on: .a)
        #expect(output.verdict == .drop)
        let answer = try #require(pair.toLocalSocketA.last)
        #expect(answer.source == pair.serverEnd && answer.destination == pair.clientEnd)
        #expect(answer.window == 0)
        #expect(answer.flags == .ack)
        #expect(answer.acknowledgmentNumber == sendUnacknowledged)
        #expect(answer.sequenceNumber == receiveNext)
        #expect(answer.options.contains(.timestamps(value: 4000, echo: 9000)))
    }

    @Test func zeroWindowProbeAndKeepaliveAreAnswered() throws {
        var pair = try Self.suspendedPair()
        let probe = TCPSegmentRepr.keepaliveProbe(
            from: pair.clientEnd, to: pair.serverEnd, sendNext: pair.socketA.isn + 5001,
            acknowledgmentNumber: pair.socketB.isn + 7001, window: 500)
        let before = pair.toLocalSocketA.count
        #expect(try pair.run(probe, .outbound, on: .a).verdict == .drop)
        #expect(pair.toLocalSocketA.count == before + 1)
    }

    @Test func peerPacketsAreHeldUntilAuthenticated() throws {
        var pair = try Self.suspendedPair()
        let fromPeer = TCPSegmentRepr.ack(from: pair.serverEnd, to: pair.clientEnd, sequenceNumber: pair.socketB.isn + 7001,
                                          acknowledgmentNumber: pair.socketA.isn + 5001, window: 500)
        #expect(try pair.run(fromPeer, .inbound, on: .a).verdict == .drop)
    }

    @Test func heldForTheMaximumSuspensionThenReleased() throws {
        var configuration = Configuration()
        configuration.maximumSuspension = .seconds(60)
        var pair = RacksPair(configuration: configuration)
        try pair.connect()
        pair.pathUp = false
        try pair.advance(by: .seconds(65))
        #expect(pair.a.connections.isEmpty)
        #expect(pair.rulesA == [.manage(pair.flowA), .release(pair.flowA)])
    }
}

@Suite struct RacksResumptionTests {
    @Test func resumesWithinOneSecondOfThePathReturning() throws {
        var pair = try RacksSuspensionTests.suspendedPair()
        try pair.advance(by: .seconds(300))
        pair.pathUp = true
        let returned = pair.now
        var resumedAt: EngineInstant?
        while resumedAt == nil && pair.now.duration(since: returned) < .seconds(5) {
            try pair.advance(by: .milliseconds(50))
            if pair.phase(.a) == .healthy && pair.phase(.b) == .healthy { resumedAt = pair.now }
        }
        #expect(try #require(resumedAt).duration(since: returned) <= .seconds(1))
        #expect(pair.rulesA.last == .release(pair.flowA))
        #expect(pair.rulesB.last == .release(pair.flowB))
        // Each local socket got a window update: same positions as the zero-window ACKs, window open.
        let update = try #require(pair.toLocalSocketA.last)
        #expect(update.window > 0)
        #expect(update.acknowledgmentNumber == pair.socketA.isn + 5001)
        #expect(pair.a.connections.first?.resumptions == 1)
    }

    @Test func simultaneousChallengesResumeExactlyOnce() throws {
        var pair = try RacksSuspensionTests.suspendedPair()
        pair.pathUp = true
        try pair.advance(by: .seconds(2))
        let responsesFromA = try pair.wireFromA.filter { bytes in
            try pair.parse(bytes).options.contains { option in
                if case .response? = try? RacksMessage(option: option) { return true }
                return false
            }
        }
        // The client never answers the server's challenges while its own is outstanding.
        #expect(responsesFromA.isEmpty)
        #expect(pair.eventsA.filter { if case .resumed = $0 { return true }; return false }.count == 1)
        #expect(pair.eventsB.filter { if case .resumed = $0 { return true }; return false }.count == 1)
    }

    @Test func pathFailingAgainDuringResumptionStillConverges() throws {
        var pair = try RacksSuspensionTests.suspendedPair()
        for _ in 0..<3 {
            // The path comes back just long enough for a challenge, then the answer is lost.
            pair.pathUp = true
            pair.dropBToA = true
            try pair.advance(by: .milliseconds(600))
            pair.pathUp = false
            pair.dropBToA = false
            try pair.advance(by: .seconds(2))
            #expect(pair.phase(.a) == .suspended)
        }
        pair.pathUp = true
        try pair.advance(by: .seconds(2))
        #expect(pair.phase(.a) == .healthy)
        #expect(pair.phase(.b) == .healthy)
    }

    @Test func forgedResponseIsRejected() throws {
        var pair = try RacksSuspensionTests.suspendedPair()
        var rng = SplitMix64(seed: 99)
        let forged = TCPSegmentRepr(
            source: pair.serverEnd, destination: pair.clientEnd, sequenceNumber: TCPSequenceNumber(1),
            acknowledgmentNumber: TCPSequenceNumber(1), flags: .ack, window: 0,
            options: [RacksMessage.response(nonce: rng.bytes(16), mac: rng.bytes(16)).option])
        let output = try pair.run(forged, .inbound, on: .a)
        #expect(output.verdict == .drop)
        #expect(output.events == [.resumptionRejected(pair.flowA, reason: "response does not match any challenge of ours")])
        #expect(pair.phase(.a) == .suspended)
    }

    @Test func forgedConfirmIsRejected() throws {
        var pair = try RacksSuspensionTests.suspendedPair()
        let forged = TCPSegmentRepr(
            source: pair.clientEnd, destination: pair.serverEnd, sequenceNumber: TCPSequenceNumber(1),
            acknowledgmentNumber: TCPSequenceNumber(1), flags: .ack, window: 0,
            options: [RacksMessage.confirm(mac: [UInt8](repeating: 7, count: 16)).option])
        let output = try pair.run(forged, .inbound, on: .b)
        #expect(output.events == [.resumptionRejected(pair.flowB, reason: "confirm does not match any response of ours")])
        #expect(pair.phase(.b) == .suspended)
    }

    @Test func replayedResumptionIsRejected() throws {
        var pair = try RacksSuspensionTests.suspendedPair()
        pair.pathUp = true
        try pair.advance(by: .seconds(2))
        #expect(pair.phase(.a) == .healthy)
        let recordedFromB = pair.wireFromB
        let recordedFromA = pair.wireFromA
        // A second outage; then an attacker replays the whole earlier exchange.
        pair.pathUp = false
        try pair.advance(by: .seconds(4))
        #expect(pair.phase(.a) == .suspended)
        for bytes in recordedFromB { try pair.deliver(bytes, to: .a) }
        for bytes in recordedFromA { try pair.deliver(bytes, to: .b) }
        #expect(pair.phase(.a) == .suspended)
        #expect(pair.phase(.b) != .healthy)
        #expect(pair.eventsA.contains { if case .resumptionRejected = $0 { return true }; return false })
    }

    @Test func messagesForUnknownConnectionsAreDropped() throws {
        var pair = RacksPair()
        let stray = TCPSegmentRepr(
            source: pair.serverEnd, destination: pair.clientEnd, sequenceNumber: TCPSequenceNumber(1),
            acknowledgmentNumber: TCPSequenceNumber(1), flags: .ack, window: 0,
            options: [RacksMessage.challenge(nonce: [UInt8](repeating: 1, count: 16)).option])
        let output = try pair.run(stray, .inbound, on: .a)
        #expect(output.verdict == .drop)
        #expect(output.transmits.isEmpty)
    }

    @Test func connectionKeyIsNeverPrinted() throws {
        var pair = try RacksSuspensionTests.suspendedPair()
        pair.pathUp = true
        try pair.advance(by: .seconds(2))
        let ephemeral = KeySchedule.EphemeralKey(seed: [UInt8](repeating: 3, count: 32))
        let key = try KeySchedule.connectionKey(
            ephemeral, peerPublicKey: KeySchedule.EphemeralKey(seed: [UInt8](repeating: 4, count: 32)).publicKey,
            transcript: KeyTranscript(client: pair.clientEnd, server: pair.serverEnd, clientISN: TCPSequenceNumber(1),
                                      serverISN: TCPSequenceNumber(2), clientPublicKey: [], serverPublicKey: []))
        #expect("\(key)" == "ConnectionKey(redacted)")
        #expect(String(describing: pair.a.connections).contains("Key") == false)
    }
}

@Suite struct RacksLimitTests {
    @Test func pastThePerPeerLimitTheOldestSuspendedConnectionIsClosed() throws {
        var configuration = Configuration()
        configuration.maximumSuspendedPerPeer = 2
        var pair = RacksPair(configuration: configuration)
        var flows: [FlowKey] = []
        for port: UInt16 in [40_000, 40_001, 40_002] {
            pair.clientPort = port
            try pair.connect()
            flows.append(pair.flowA)
        }
        #expect(pair.a.connections.count == 3)
        // Suspend them one after the other, oldest first.
        var outputs: [EngineOutput] = []
        for flow in flows {
            pair.now = pair.now + .seconds(1)
            var segment = TCPSegmentRepr.ack(from: flow.local, to: flow.remote, sequenceNumber: TCPSequenceNumber(1),
                                              acknowledgmentNumber: TCPSequenceNumber(1), window: 1)
            segment.flags = .ack
            outputs.append(pair.a.handleLinkEvent(.addressesLost([RacksPair.addressA]), now: pair.now))
        }
        let ended = outputs.flatMap(\.events).compactMap { event -> (FlowKey, String)? in
            if case .connectionEnded(_, let flow, let reason) = event { return (flow, reason) }
            return nil
        }
        // All three went down at once (one link event); the limit closed one of them, with the reason logged.
        #expect(ended.count == 1)
        #expect(ended.first?.1 == "limit of 2 suspended connections to 10.2.0.2 reached; closed the oldest")
        #expect(pair.a.connections.filter { $0.phase == .suspended }.count == 2)
        // The rules follow the net result: the two held flows are queued; the closed one never was.
        let rules = outputs.flatMap(\.ruleChanges)
        #expect(Set(rules) == Set(pair.a.connections.map { RuleChange.manage($0.flow) }))
        #expect(rules.count == 2)
    }

    @Test func pastTheTotalLimitTheOldestIsClosedWithAResetToItsSocket() throws {
        var configuration = Configuration()
        configuration.maximumSuspendedTotal = 1
        var pair = RacksPair(configuration: configuration)
        pair.socketA.bytesReceived = 7000
        try pair.connect()
        let first = pair.flowA
        pair.clientPort = 40_001
        try pair.connect()
        let second = pair.flowA
        try pair.advance(by: .seconds(1))  // snapshots of both
        let output = pair.a.handleLinkEvent(.addressesLost([RacksPair.addressA]), now: pair.now)
        #expect(output.events.contains(.connectionEnded(id: 1, first, reason: "limit of 1 suspended connections in all reached; closed the oldest")))
        #expect(output.ruleChanges == [.manage(second)])
        let reset = try #require(output.transmits.first.map { try pair.parse($0) })
        #expect(reset.flags.contains(.rst))
        #expect(reset.source == first.remote && reset.destination == first.local)
        // In window exactly: the socket's rcv_nxt, so the kernel resets rather than challenges.
        #expect(reset.sequenceNumber == pair.socketB.isn + 1 + 7000)
        #expect(pair.a.connections.map(\.flow) == [second])
    }
}

@Suite struct RacksFloodTests {
    /// SYNs with rackd's hello from forged sources, each answered by the server's kernel with a SYN-ACK.
    static func forgedHandshake(_ pair: inout RacksPair, index: Int) throws -> EngineOutput {
        let spoofed = TCPEndpoint(address: .v4(IPv4Address(rawValue: 0x0A00_0000 + UInt32(index))), port: 1024)
        var syn = TCPSegmentRepr.syn(from: spoofed, to: pair.serverEnd, sequenceNumber: TCPSequenceNumber(UInt32(index)),
                                     window: 1000, options: RacksPair.synOptions + [RacksMessage.hello(version: 1).option])
        syn.options.insert(.noOperation, at: 0)
        _ = try pair.run(syn, .inbound, on: .b)
        let synAck = TCPSegmentRepr.synAck(from: pair.serverEnd, to: spoofed, sequenceNumber: TCPSequenceNumber(7),
                                           acknowledgmentNumber: TCPSequenceNumber(UInt32(index) + 1), window: 1000,
                                           options: RacksPair.synOptions)
        return try pair.run(synAck, .outbound, on: .b)
    }

    @Test func forgedSYNsMakeTheServerSendNothingAndExpire() throws {
        var pair = RacksPair()
        var transmits = 0
        for index in 0..<200 {
            transmits += try Self.forgedHandshake(&pair, index: index).transmits.count
        }
        #expect(transmits == 0)
        #expect(pair.b.connections.count == 200)
        try pair.advance(by: .seconds(6))
        #expect(pair.b.connections.isEmpty)
        #expect(pair.wireFromB.isEmpty)
        #expect(pair.eventsB.isEmpty)  // no log line per forged SYN
    }

    @Test func keyExchangeStateIsBounded() throws {
        var pair = RacksPair()
        for index in 0..<(RackdPeer.maximumPending + 50) {
            _ = try Self.forgedHandshake(&pair, index: index)
        }
        #expect(pair.b.connections.count == RackdPeer.maximumPending)
    }

    @Test func lostFinalKeyMessageIsRecoveredByTheServer() throws {
        var pair = RacksPair()
        // Everything from A after its first key message is lost for a while: the server has the client's
        // key but never hears that the client has its own.
        let synOutput = try pair.run(pair.syn(), .outbound, on: .a)
        let decoratedSYN = try #require(pair.replacement(of: synOutput))
        _ = try pair.run(try pair.parse(decoratedSYN), .inbound, on: .b)
        let synAckOutput = try pair.run(pair.synAck(), .outbound, on: .b)
        let decoratedSYNACK = try #require(pair.replacement(of: synAckOutput))
        pair.aToBBudget = 1  // A's first key reaches B; A's final answer is lost
        _ = try pair.run(try pair.parse(decoratedSYNACK), .inbound, on: .a)
        #expect(pair.phase(.a) == .healthy)
        #expect(pair.phase(.b) == .keyExchange)
        pair.aToBBudget = nil
        try pair.advance(by: .milliseconds(500))
        #expect(pair.phase(.b) == .healthy)
    }
}
