// rackd — what the operator asks for: `rackctl suspend` and `rackctl resume` (and the sleep hook, which
// runs them around a system sleep).
//
// Suspending holds a connection exactly as an outage would (zero window, every packet queued, the peer
// unheard), and then keeps holding it: no challenge or roam is sent, and none of the peer's is answered,
// so the path working does not undo it. The peer sees an outage and suspends on its own. Resuming lifts
// the hold and challenges at once, so the connection is back as soon as the peer answers.

/// Which connections an operator request names.
public enum OperatorTarget: Sendable, Equatable {
    case all
    case connection(id: UInt64)
}

/// What an operator request did, connection by connection.
public struct OperatorOutcome: Sendable {
    public var output = EngineOutput()
    /// The connections the request changed.
    public var changed: [UInt64] = []
    /// The connections it left alone, with the reason (e.g. "still exchanging keys").
    public var unchanged: [(id: UInt64, reason: String)] = []
}

/// An operator request named a connection rackd does not manage.
public struct UnknownConnectionError: Error, Equatable, CustomStringConvertible {
    public var id: UInt64
    public var description: String { "no managed connection has id \(id); 'rackctl status' lists them" }
}

extension RacksEngine {
    static let operatorSuspendReason = "suspended by the operator (rackctl suspend)"

    mutating func suspendByOperator(_ target: OperatorTarget, now: EngineInstant) throws(UnknownConnectionError)
        -> OperatorOutcome
    {
        var outcome = OperatorOutcome()
        for flow in try flows(for: target) {
            guard var connection = connections[flow] else { continue }  // closed by a limit meanwhile
            switch connection.state {
            case .keyExchange:
                outcome.unchanged.append((connection.id, "still exchanging keys; nothing to hold yet"))
                continue
            case .healthy:
                suspend(&connection, reason: Self.operatorSuspendReason, now: now, into: &outcome.output)
                guard let suspended = connections[flow] else { continue }
                connection = suspended
            case .suspended(let suspended) where suspended.heldByOperator:
                outcome.unchanged.append((connection.id, "already held by the operator"))
                continue
            case .suspended:
                break
            }
            guard case .suspended(var suspended) = connection.state else { continue }
            // Forget resumption attempts under way: an answer to one must not lift the hold.
            suspended.heldByOperator = true
            suspended.challengeNonces = []
            suspended.answeredChallenges = []
            suspended.roam = nil
            connection.roamOffers = []
            transition(&connection, to: .suspended(suspended), reason: Self.operatorSuspendReason,
                       into: &outcome.output)
            connections[flow] = connection
            outcome.changed.append(connection.id)
        }
        reconcile(now: now, into: &outcome.output)
        return outcome
    }

    mutating func resumeByOperator(_ target: OperatorTarget, now: EngineInstant) throws(UnknownConnectionError)
        -> OperatorOutcome
    {
        var outcome = OperatorOutcome()
        for flow in try flows(for: target) {
            guard var connection = connections[flow] else { continue }
            guard case .suspended(var suspended) = connection.state else {
                outcome.unchanged.append((connection.id, "not suspended (\(connection.phase.rawValue))"))
                continue
            }
            // The next timer run challenges (or roams) at once, held or not: the operator wants it now.
            suspended.heldByOperator = false
            suspended.nextChallengeAt = now
            connection.state = .suspended(suspended)
            connections[flow] = connection
            outcome.changed.append(connection.id)
        }
        outcome.output.append(handleTimeout(now: now))
        return outcome
    }

    /// The connections `target` names, oldest first.
    private func flows(for target: OperatorTarget) throws(UnknownConnectionError) -> [FlowKey] {
        switch target {
        case .all:
            return flowsInOrder
        case .connection(let id):
            guard let connection = connections.values.first(where: { $0.id == id }) else {
                throw UnknownConnectionError(id: id)
            }
            return [connection.flow]
        }
    }
}
