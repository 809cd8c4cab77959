// rackd — the policy's exclusions as the SYN chains' interval sets, and the ordinary sets' keys
// (Firewall/RackdRuleset+Ordinary.swift).

@testable import RackDaemon
import RackEngine
import Testing

@Suite struct SYNExclusionsTests {
    private func policy(ports: [PortRange] = [], manage: [PortRange] = [], addresses: [String] = []) -> Policy {
        var policy = Policy()
        policy.excludePorts = ports
        policy.managePorts = manage
        policy.excludeAddresses = addresses.map { text in
            let parts = text.split(separator: "/")
            let address = IPAddress(parsing: String(parts[0]))!
            return AddressPrefix(address, length: parts.count > 1 ? Int(parts[1])! : (address.isIPv4 ? 32 : 128))
        }
        return policy
    }

    private func ranges(_ ranges: [SYNExclusions.Range]) -> [[[UInt8]]] { ranges.map { [$0.lower, $0.upper] } }

    @Test func prefixesBecomeRangesPerFamily() {
        let exclusions = SYNExclusions(policy(addresses: ["192.0.2.77/24", "10.0.0.1", "fd00::/8"]))
        #expect(ranges(exclusions.addresses4) == [[[10, 0, 0, 1], [10, 0, 0, 1]], [[192, 0, 2, 0], [192, 0, 2, 255]]])
        #expect(ranges(exclusions.addresses6) == [[[0xfd] + [UInt8](repeating: 0, count: 15),
                                                    [0xfd] + [UInt8](repeating: 0xff, count: 15)]])
        #expect(exclusions.ports.isEmpty && exclusions.managedPorts == nil)
    }

    @Test func overlappingAndTouchingRangesMerge() {
        let exclusions = SYNExclusions(policy(ports: [PortRange(6005, 6020), PortRange(25), PortRange(6000, 6010),
                                                      PortRange(6021, 6022), PortRange(27)]))
        #expect(ranges(exclusions.ports) == [[[0, 25], [0, 25]], [[0, 27], [0, 27]], [[0x17, 0x70], [0x17, 0x86]]])
        let addresses = SYNExclusions(policy(addresses: ["192.0.2.0/24", "192.0.3.0/24", "192.0.2.5"]))
        #expect(ranges(addresses.addresses4) == [[[192, 0, 2, 0], [192, 0, 3, 255]]])
    }

    @Test func elementsEndAfterEachRangeExceptAtTheLargestKey() {
        let elements = SYNExclusions.elements(SYNExclusions(policy(ports: [PortRange(22), PortRange(65000, 65535)])).ports)
        #expect(elements.map(\.key) == [[0, 22], [0, 23], [0xfd, 0xe8]])
        #expect(elements.map(\.isEnd) == [false, true, false])
        let everything = SYNExclusions.elements(SYNExclusions(policy(addresses: ["0.0.0.0/0"])).addresses4)
        #expect(everything.map(\.key) == [[0, 0, 0, 0]] && everything.map(\.isEnd) == [false])
    }

    @Test func managePortsAreKeptOnlyWhenGiven() {
        #expect(SYNExclusions(policy(manage: [PortRange(8000, 8100), PortRange(22)])).managedPorts.map(ranges)
            == [[[0, 22], [0, 22]], [[0x1f, 0x40], [0x1f, 0xa4]]])
        #expect(SYNExclusions(policy()).managedPorts == nil)
    }

    @Test func theSYNChainsGrowOnlyByTheManagePortsRules() {
        let plain = RackdRuleset(queueNumber: 1, firewallMark: 1, variant: .compat)
        var narrowed = plain
        narrowed.exclusions = SYNExclusions(policy(manage: [PortRange(22)]))
        for hook in RackdRuleset.Hook.allCases {
            #expect(plain.synRuleCount(for: hook) == 9)
            #expect(narrowed.synRuleCount(for: hook) == 11)
        }
    }

    @Test func racksModeAddsTheOrdinaryClientRules() {
        var racks = RackdRuleset(queueNumber: 1, firewallMark: 1, variant: .compat)
        racks.exclusions = SYNExclusions(policy(), rocksPorts: [PortRange(7000), PortRange(5000, 5002), PortRange(5003)])
        #expect(racks.exclusions.rocksPorts.map(ranges) == [[[0x13, 0x88], [0x13, 0x8b]], [[0x1b, 0x58], [0x1b, 0x58]]])
        // Input: the plain SYN rule; output: our SYN-ACK's two flow-map lookups and the accept after them.
        #expect(racks.synRuleCount(for: .input) == 10)
        #expect(racks.synRuleCount(for: .output) == 12)
        // Passthrough mode queues every handshake: no such rules.
        #expect(SYNExclusions(policy(), rocksPorts: nil).rocksPorts == nil)
    }

    @Test func theRocksPortsAreTheServePortsAndTheReconnectionPort() {
        var rocks = RocksSettings()
        rocks.servePorts = [PortRange(5000, 5002)]
        rocks.reconnectionPort = 7000
        #expect(rocks.portsTakingPlainSYNs.isEmpty, "rocks off: rackd needs no plain SYN")
        rocks.legacyAuthentication = true
        #expect(rocks.portsTakingPlainSYNs == [PortRange(5000, 5002), PortRange(7000)])
        rocks.servePorts = []
        #expect(rocks.portsTakingPlainSYNs.isEmpty, "no serve ports and no probing: rocks is not in use")
        rocks.probing = .listed
        #expect(rocks.portsTakingPlainSYNs == [PortRange(7000)])
    }

    @Test func ordinaryKeysPadThePortToARegister() {
        let v4 = TCPEndpoint(address: IPAddress(parsing: "10.2.0.2")!, port: 5001)
        #expect(RackdRuleset.ordinaryKey(v4) == [10, 2, 0, 2, 0x13, 0x89, 0, 0])
        let v6 = TCPEndpoint(address: IPAddress(parsing: "fd00:2::2")!, port: 443)
        #expect(RackdRuleset.ordinaryKey(v6).count == Int(RackdRuleset.ordinaryIPv6.keyLength))
        #expect(RackdRuleset.ordinaryKey(v4).count == Int(RackdRuleset.ordinaryIPv4.keyLength))
    }
}
