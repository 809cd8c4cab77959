// rackd — what the data plane must do for the connections as they are now.
//
// Three things follow from the connections' states alone: which tuples the kernel queues (the managed
// sets), which local addresses rackd keeps on `lo`, and which wire tuples lead to which connection.
// Rather than adding and removing them at each transition, where one forgotten case leaves a flow
// queued for ever, every input that can change a state ends with `reconcile`, which derives the three
// from `connections` and reports the differences.

extension RacksEngine {
    /// Brings the managed flows, held addresses and wire index in line with `connections`.
    mutating func reconcile(now: EngineInstant, into output: inout EngineOutput) {
        var queued = Set<FlowKey>()
        var wire: [FlowKey: FlowKey] = [:]
        var usedAddresses = Set<IPAddress>()
        for connection in connections.values {
            usedAddresses.insert(connection.flow.local.address)
            if connection.isSuspended || connection.path != nil {
                queued.insert(connection.flow)
            }
            if let path = connection.path {
                queued.insert(path.wire)
                wire[path.wire] = connection.flow
            }
            // Until a roam is confirmed, its tuple is queued so that nothing reaches the kernel, which
            // would answer with a reset.
            for offer in connection.roamOffers {
                queued.insert(offer.wire)
                wire[offer.wire] = connection.flow
            }
            if case .suspended(let suspended) = connection.state, let attempt = suspended.roam {
                wire[attempt.wire] = connection.flow
            }
        }
        wire = wire.filter { connections[$0.key] == nil }  // a socket's own tuple always names itself
        for flow in managedFlows.subtracting(queued).sorted(by: Self.flowOrder) {
            output.ruleChanges.append(.release(flow))
        }
        for flow in queued.subtracting(managedFlows).sorted(by: Self.flowOrder) {
            output.ruleChanges.append(.manage(flow))
        }
        managedFlows = queued
        wireFlows = wire

        let held = usedAddresses.intersection(lostAddresses)
        for address in heldAddresses.subtracting(held).sorted(by: Self.addressOrder) {
            output.addressChanges.append(.release(address))
        }
        for address in held.subtracting(heldAddresses).sorted(by: Self.addressOrder) {
            output.addressChanges.append(.hold(address))
        }
        heldAddresses = held
    }

    /// A fixed order for reporting sets, so the same inputs give the same outputs.
    static func flowOrder(_ a: FlowKey, _ b: FlowKey) -> Bool { a.description < b.description }
    static func addressOrder(_ a: IPAddress, _ b: IPAddress) -> Bool { a.description < b.description }
}
