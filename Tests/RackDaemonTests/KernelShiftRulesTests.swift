// rackd — the rules kernel shifts add to rackd's table (Firewall/RackdRuleset+Rules.swift, Core/KernelShift.swift):
// present only when rackd can shift (a `ct` rule makes conntrack track every flow), and sending what conntrack
// shifts to the shift queue from every chain that queues a shifted flow's packets.

import CNftables
@testable import RackDaemon
import RackEngine
import Testing

@Suite struct KernelShiftRulesTests {
    private func ruleset(shifts: Bool) -> RackdRuleset {
        var ruleset = RackdRuleset(queueNumber: 3939, firewallMark: 0x1000_0000, variant: .compat)
        ruleset.kernelShifts = shifts
        return ruleset
    }

    /// The expression names of each rule of `chain`, freed.
    private func expressionNames(_ ruleset: RackdRuleset, _ chain: String) -> [[String]] {
        ruleset.rules(for: chain).map { rule in
            rule.expressions.map { expression in
                defer { nftnl_expr_free(expression) }
                return String(cString: nftnl_expr_get_str(expression, UInt16(NFTNL_EXPR_NAME)))
            }
        }
    }

    @Test func withoutShiftsNoRuleReadsConntrackAndRacksOwnPacketsAreTracked() {
        let table = ruleset(shifts: false)
        #expect(!table.chainNames.contains(RackdRuleset.ownPacketsChain.name))
        for chain in table.chainNames {
            #expect(!expressionNames(table, chain).joined().contains("ct"), "chain \(chain) reads conntrack")
        }
        #expect(expressionNames(table, RackdRuleset.queuedChain).count == 1)
    }

    @Test func withShiftsWhatConntrackShiftsGoesToTheShiftQueue() {
        let table = ruleset(shifts: true)
        #expect(RackdRuleset.shiftQueueNumber(after: 3939) == 3940)
        #expect(RackdRuleset.shiftQueueNumber(after: .max) == nil)
        // The chain queued, and the outbound and inbound chains of a shifted flow, test conntrack first.
        for chain in [RackdRuleset.queuedChain, RackdRuleset.shiftedOutChain, RackdRuleset.shiftedChain,
                      RackdRuleset.chainName(of: .shiftRewrite(.v4))] {
            let rules = expressionNames(table, chain)
            #expect(rules.count == 2, "chain \(chain)")
            #expect(rules.first?.first == "ct", "chain \(chain): the conntrack test first")
        }
        // rackd's own packets are not tracked: before conntrack's hook.
        #expect(table.chainNames.contains(RackdRuleset.ownPacketsChain.name))
        #expect(RackdRuleset.ownPacketsChain.priority < -200 && RackdRuleset.ownPacketsChain.hook == .output)
        #expect(expressionNames(table, RackdRuleset.ownPacketsChain.name) == [["meta", "bitwise", "cmp", "meta", "cmp", "notrack"]])
    }

    @Test func aShiftedFlowsElementsSendItToTheShiftedChains() {
        let socket = FlowKey(local: TCPEndpoint(address: IPAddress(parsing: "10.1.0.2")!, port: 5002),
                             remote: TCPEndpoint(address: IPAddress(parsing: "10.2.0.2")!, port: 40000))
        let link = FlowKey(local: TCPEndpoint(address: IPAddress(parsing: "10.1.0.2")!, port: 44000),
                           remote: TCPEndpoint(address: IPAddress(parsing: "10.2.0.2")!, port: 45001))
        let offsets = (TCPSequenceOffset(rawValue: 76), TCPSequenceOffset(rawValue: 76))
        let own = FlowMapElement.elements(for: .shift(KernelShift(flow: socket, localOffset: offsets.0, peerOffset: offsets.1)))
        #expect(own.map(\.description) == [
            "flows_out4 \(ManagedFlowKey(socket)) : shiftOut", "flows_in4 \(ManagedFlowKey(socket)) : shift",
        ])
        let moved = FlowMapElement.elements(for: .shift(KernelShift(flow: socket, wire: link, localOffset: offsets.0,
                                                                    peerOffset: offsets.1)))
        #expect(moved.map(\.description) == [
            "flows_out4 \(ManagedFlowKey(socket)) : shiftOut", "flows_in4 \(ManagedFlowKey(link)) : shiftRewrite(RackDaemon.FlowMap.Family.v4)",
            "socket_of4 \(ManagedFlowKey(link)) : \(ManagedFlowKey(socket))", "flows_in4 \(ManagedFlowKey(socket)) : drop",
        ])
    }
}
