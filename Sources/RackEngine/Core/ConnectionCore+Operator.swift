// rackd — `rackctl suspend` and `rackctl resume` over the table (the transitions are in
// Connection+Operator.swift).

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

extension ConnectionCore {
    mutating func suspendByOperator(_ target: OperatorTarget, now: EngineInstant) throws(UnknownConnectionError)
        -> OperatorOutcome
    {
        var outcome = OperatorOutcome()
        for id in try ids(for: target) {
            var refusal: String?
            run(id, now: now, into: &outcome.output) { connection, _ in
                var actions = ConnectionActions()
                refusal = connection.holdForOperator(now: now, into: &actions)
                return actions
            }
            guard table[id] != nil else { continue }  // closed by a limit meanwhile
            if let refusal { outcome.unchanged.append((id, refusal)) } else { outcome.changed.append(id) }
        }
        reconcile(into: &outcome.output)
        return outcome
    }

    mutating func resumeByOperator(_ target: OperatorTarget, now: EngineInstant) throws(UnknownConnectionError)
        -> OperatorOutcome
    {
        var outcome = OperatorOutcome()
        for id in try ids(for: target) {
            var refusal: String?
            let released = table.modify(id) { connection in
                var actions = ConnectionActions()
                refusal = connection.releaseForOperator(now: now, into: &actions)  // changes nothing if refused
                return actions
            }
            guard let actions = released else { continue }
            if let refusal {
                outcome.unchanged.append((id, refusal))
                continue
            }
            carryOut(actions, of: id, now: now, into: &outcome.output)
            outcome.changed.append(id)
        }
        outcome.output.append(handleTimeout(now: now))
        return outcome
    }

    /// The connections `target` names, oldest first.
    private func ids(for target: OperatorTarget) throws(UnknownConnectionError) -> [UInt64] {
        switch target {
        case .all:
            return table.idsInOrder
        case .connection(let id):
            guard table[id] != nil else { throw UnknownConnectionError(id: id) }
            return [id]
        }
    }
}
