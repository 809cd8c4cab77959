// rackd — tests for rackd.conf parsing: defaults, every key, and every kind of error with its line.

import Testing
@testable import RackEngine

@Suite struct ConfigurationParserTests {
    @Test func emptyFileGivesDefaults() throws {
        #expect(try ConfigurationParser.parse("") == Configuration())
        #expect(try ConfigurationParser.parse("# only a comment\n\n   \n") == Configuration())
    }

    @Test func everyDaemonKey() throws {
        let config = try ConfigurationParser.parse("""
            [daemon]
            mode = passthrough   # trailing comment
            rules = compat
            queue = 12
            queue-max-length = 0x1000
            firewall-mark = 0x40_000000
            """)
        #expect(config.mode == .passthrough)
        #expect(config.rules == .compat)
        #expect(config.queueNumber == 12)
        #expect(config.queueMaxLength == 4096)
        #expect(config.firewallMark == 0x4000_0000)
    }

    @Test(arguments: [
        ("[daemon]\nmode = fast\n", 2, "mode: 'fast' is not one of: racks, passthrough"),
        ("[daemon]\nqueue = 70000\n", 2, "queue: 70000 is out of range 0...65535"),
        ("[daemon]\nqueue = twelve\n", 2, "queue: 'twelve' is not a whole number"),
        ("mode = racks\n", 1, "'mode' is outside any section; put it under [daemon] or another section"),
        ("[daemon]\n\ncolour = blue\n", 3, "unknown key 'colour' in [daemon]; known keys: firewall-mark, mode, queue, queue-max-length, rules"),
        ("[deamon]\n", 1, "unknown section [deamon]; known sections: [control], [daemon], [heartbeat], [limits], [policy], [rocks], [suspension]"),
        ("[daemon\n", 1, "malformed section header '[daemon'; write it as [name]"),
        ("[daemon]\nmode\n", 2, "expected 'key = value', found 'mode'"),
        ("[daemon]\nmode =\n", 2, "'mode' has no value"),
        ("[daemon]\nmode = racks\nmode = racks\n", 3, "'mode' is set twice in [daemon]"),
        ("[daemon]\nfirewall-mark = 0\n", 2, "firewall-mark: 0 is out of range 1...4294967295"),
    ])
    func errorsNameTheLineAndTheReason(text: String, line: Int, message: String) {
        #expect(throws: ConfigurationError(line: line, message: message)) {
            try ConfigurationParser.parse(text)
        }
    }

    @Test func heartbeatSuspensionAndPolicy() throws {
        let config = try ConfigurationParser.parse("""
            [heartbeat]
            interval = 500ms
            misses = 3
            [suspension]
            maximum = 2d
            [policy]
            manage-ports = 22, 8000-8100
            exclude-addresses = 192.168.0.0/16, fd00::/8, 203.0.113.9
            """)
        #expect(config.heartbeatInterval == .milliseconds(500))
        #expect(config.heartbeatMisses == 3)
        #expect(config.failureTimeout == .milliseconds(1750))
        #expect(config.maximumSuspension == .seconds(2 * 86400))
        #expect(config.policy.managePorts == [PortRange(22), PortRange(8000, 8100)])
        let remote = TCPEndpoint(address: IPAddress(parsing: "192.168.4.4")!, port: 22)
        let local = TCPEndpoint(address: IPAddress(parsing: "10.0.0.1")!, port: 40000)
        #expect(!config.policy.allows(local: local, remote: remote, serverPort: 22))
        let other = TCPEndpoint(address: IPAddress(parsing: "fd00:1::5")!, port: 22)
        #expect(!config.policy.allows(local: local, remote: other, serverPort: 22))
        let allowed = TCPEndpoint(address: IPAddress(parsing: "198.51.100.1")!, port: 8050)
        #expect(config.policy.allows(local: local, remote: allowed, serverPort: 8050))
        #expect(!config.policy.allows(local: local, remote: allowed, serverPort: 443))
    }

    @Test(arguments: [
        ("[heartbeat]\ninterval = 10\n", "interval: '10' is not a duration; write a whole number with ms, s, m, h or d, like 500ms or 7d"),
        ("[heartbeat]\ninterval = 50ms\n", "interval: 50ms is out of range 100ms...60s"),
        ("[policy]\nmanage-ports = 22, 0\n", "manage-ports: '0' is not a port (1-65535) or a range like 8000-8100"),
        ("[policy]\nexclude-addresses = 10.0.0.0/33\n", "exclude-addresses: '10.0.0.0/33' has a prefix length outside 0...32"),
        ("[policy]\nexclude-addresses = example.com\n", "exclude-addresses: 'example.com' is not an address or prefix like 10.0.0.0/8 or fd00::/8"),
    ])
    func badValuesInNewSections(text: String, message: String) {
        #expect(throws: ConfigurationError(line: 2, message: message)) { try ConfigurationParser.parse(text) }
    }

    @Test func loopbackIsNeverManaged() {
        let policy = Policy()
        let loop = TCPEndpoint(address: IPAddress(parsing: "127.0.0.1")!, port: 22)
        let loop6 = TCPEndpoint(address: IPAddress(parsing: "::1")!, port: 22)
        #expect(!policy.allows(local: loop, remote: loop, serverPort: 22))
        #expect(!policy.allows(local: loop6, remote: loop6, serverPort: 22))
    }

    @Test func errorDescriptionStartsWithTheLine() {
        let error = ConfigurationError(line: 7, message: "bad")
        #expect(error.description == "line 7: bad")
    }

    @Test func controlSectionSetsTheSocketAndTheStatusGroup() throws {
        let text = "[control]\nsocket = /run/rackd-test/ctl.sock\nstatus-group = adm\n"
        let unresolved = try ConfigurationParser.parse(text)
        #expect(unresolved.controlSocketPath == "/run/rackd-test/ctl.sock")
        #expect(unresolved.statusGroup == StatusGroup(name: "adm"))
        let resolved = try ConfigurationParser.parse(text, resolveGroup: { $0 == "adm" ? 4 : nil })
        #expect(resolved.statusGroup == StatusGroup(name: "adm", id: 4))
        #expect(Configuration().controlSocketPath == "/run/rackd/rackd.sock")
        #expect(Configuration().statusGroup == nil)
    }

    @Test func aStatusGroupTheSystemLacksIsAnErrorOnItsLine() {
        let text = "# rackd\n[control]\n\nstatus-group = operators\n"
        #expect(throws: ConfigurationError(
            line: 4,
            message: "status-group: no group 'operators' on this system; create it (groupadd operators) or remove the line")) {
            try ConfigurationParser.parse(text, resolveGroup: { _ in nil })
        }
    }

    @Test func aSocketPathMustFitASocketAddress() {
        let long = "/" + String(repeating: "a", count: 120)
        #expect(throws: ConfigurationError(line: 2, message: "socket: the path is 121 bytes; a unix socket path holds at most 107")) {
            try ConfigurationParser.parse("[control]\nsocket = \(long)\n")
        }
    }

    // MARK: [rocks]

    @Test func rocksIsOffByDefault() throws {
        let rocks = try ConfigurationParser.parse("").rocks
        #expect(rocks == RocksSettings())
        #expect(!rocks.legacyAuthentication)
        #expect(rocks.probing == .off)
        #expect(rocks.probeAddresses.isEmpty && rocks.probePorts.isEmpty && rocks.servePorts.isEmpty)
        #expect(rocks.heartbeatPort == 0 && rocks.reconnectionPort == 0)
        #expect(rocks.negativeCacheLifetime == .seconds(3600))
        #expect(rocks.conntrack, "conntrack carries shifts unless told not to")
        #expect(!rocks.isEnabled)
    }

    @Test func everyRocksKey() throws {
        let config = try ConfigurationParser.parse("""
            [rocks]
            legacy-auth = yes        # a trailing comment
            probe = listed
            probe-addresses = 10.1.0.0/16, 192.0.2.7
            probe-ports = 22, 8000-8100
            serve-ports = 22, 2222
            heartbeat-port = 4000
            reconnection-port = 0x0fa1
            negative-cache = 2h
            conntrack = no
            """)
        let rocks = config.rocks
        #expect(rocks.legacyAuthentication)
        #expect(rocks.probing == .listed)
        #expect(rocks.probeAddresses == [
            AddressPrefix(IPAddress(parsing: "10.1.0.0")!, length: 16), AddressPrefix(IPAddress(parsing: "192.0.2.7")!, length: 32),
        ])
        #expect(rocks.probePorts == [PortRange(22), PortRange(8000, 8100)])
        #expect(rocks.servePorts == [PortRange(22), PortRange(2222)])
        #expect(rocks.heartbeatPort == 4000)
        #expect(rocks.reconnectionPort == 4001)
        #expect(rocks.negativeCacheLifetime == .seconds(7200))
        #expect(!rocks.conntrack)
        #expect(rocks.isEnabled)
        #expect(rocks.lists(TCPEndpoint(address: IPAddress(parsing: "10.1.200.3")!, port: 8050)))
        #expect(!rocks.lists(TCPEndpoint(address: IPAddress(parsing: "10.2.0.1")!, port: 22)))
        #expect(!rocks.lists(TCPEndpoint(address: IPAddress(parsing: "192.0.2.7")!, port: 443)))
        #expect(rocks.serves(2222) && !rocks.serves(23))
        // The rest of the file is untouched.
        var expected = Configuration()
        expected.rocks = rocks
        #expect(config == expected)
    }

    @Test(arguments: [
        // Everywhere needs no list.
        ("[rocks]\nlegacy-auth = yes\nprobe = everywhere\n", RocksProbing.everywhere, 0, 0),
        // Listed needs one list, not both.
        ("[rocks]\nlegacy-auth = yes\nprobe = listed\nprobe-ports = 22\n", .listed, 0, 1),
        ("[rocks]\nprobe-addresses = 192.0.2.0/24\nprobe = listed\nlegacy-auth = yes\n", .listed, 1, 0),
        // Serving alone, without probing.
        ("[rocks]\nlegacy-auth = yes\nserve-ports = 22\n", .off, 0, 0),
        ("[rocks]\nlegacy-auth = yes\nprobe = off\n", .off, 0, 0),
    ])
    func rocksCombinationsThatAreValid(text: String, probing: RocksProbing, addresses: Int, ports: Int) throws {
        let rocks = try ConfigurationParser.parse(text).rocks
        #expect(rocks.legacyAuthentication)
        #expect(rocks.probing == probing)
        #expect(rocks.probeAddresses.count == addresses)
        #expect(rocks.probePorts.count == ports)
    }

    @Test func rocksPortsAndCacheTakeEffectOnlyWithLegacyAuthButAreNotErrorsWithout() throws {
        // legacy-auth = no: rocks peers are ordinary, and these keys (which only shape what rocks would
        // use) are harmless. The same port for heartbeats (UDP) and reconnection (TCP) is fine.
        let rocks = try ConfigurationParser.parse("""
            [rocks]
            legacy-auth = no
            probe = off
            heartbeat-port = 7000
            reconnection-port = 7000
            negative-cache = 30d
            """).rocks
        #expect(!rocks.legacyAuthentication && !rocks.isEnabled)
        #expect(rocks.heartbeatPort == 7000 && rocks.reconnectionPort == 7000)
        #expect(rocks.negativeCacheLifetime == .seconds(30 * 86400))
        #expect(try ConfigurationParser.parse("[rocks]\nnegative-cache = 1s\nheartbeat-port = 65535\n").rocks.heartbeatPort == 65535)
    }

    @Test(arguments: [
        ("legacy-auth = true", "legacy-auth: 'true' is not one of: yes, no"),
        ("legacy-auth = Yes", "legacy-auth: 'Yes' is not one of: yes, no"),
        ("probe = sometimes", "probe: 'sometimes' is not one of: off, listed, everywhere"),
        ("probe-addresses = fd00::/8", "probe-addresses: 'fd00::/8' is IPv6; rocks 2.4 speaks IPv4 only"),
        ("probe-addresses = rock.example", "probe-addresses: 'rock.example' is not an address or prefix like 10.0.0.0/8 or fd00::/8"),
        ("probe-addresses = 10.0.0.0/40", "probe-addresses: '10.0.0.0/40' has a prefix length outside 0...32"),
        ("probe-ports = 22, 0", "probe-ports: '0' is not a port (1-65535) or a range like 8000-8100"),
        ("probe-ports = 9000-8000", "probe-ports: '9000-8000' is not a port (1-65535) or a range like 8000-8100"),
        ("serve-ports = ssh", "serve-ports: 'ssh' is not a port (1-65535) or a range like 8000-8100"),
        ("heartbeat-port = 65536", "heartbeat-port: 65536 is out of range 0...65535"),
        ("heartbeat-port = any", "heartbeat-port: 'any' is not a whole number"),
        ("reconnection-port = -1", "reconnection-port: '-1' is not a whole number"),
        ("reconnection-port = 100000", "reconnection-port: 100000 is out of range 0...65535"),
        ("negative-cache = 500ms", "negative-cache: 500ms is out of range 1s...30d"),
        ("negative-cache = 31d", "negative-cache: 31d is out of range 1s...30d"),
        ("negative-cache = 3600", "negative-cache: '3600' is not a duration; write a whole number with ms, s, m, h or d, like 500ms or 7d"),
        ("probes = off", "unknown key 'probes' in [rocks]; known keys: conntrack, heartbeat-port, legacy-auth, negative-cache, probe, probe-addresses, probe-ports, reconnection-port, serve-ports"),
        ("conntrack = maybe", "conntrack: 'maybe' is not one of: yes, no"),
    ])
    func badRocksValuesNameTheirLine(line: String, message: String) {
        #expect(throws: ConfigurationError(line: 3, message: message)) {
            try ConfigurationParser.parse("[rocks]\n# rocks 2.4 peers\n\(line)\n")
        }
    }

    static let needsLegacyAuth =
        "rocks peers need legacy-auth = yes (rocks' 128-bit DH and Blowfish are weak); set it, or remove this line"

    @Test(arguments: [
        // Probing or serving without legacy-auth = yes: absent, or no.
        ("[rocks]\nprobe = everywhere\n", 2, "probe: \(needsLegacyAuth)"),
        ("[rocks]\nlegacy-auth = no\n\nprobe = listed\nprobe-ports = 22\n", 4, "probe: \(needsLegacyAuth)"),
        ("[rocks]\n# serve rocks clients\nserve-ports = 22\n", 3, "serve-ports: \(needsLegacyAuth)"),
        ("[rocks]\nserve-ports = 22\nlegacy-auth = no\n", 2, "serve-ports: \(needsLegacyAuth)"),
        // Listed with nothing listed.
        ("[rocks]\nlegacy-auth = yes\nprobe = listed\n", 3,
         "probe: listed probes only what probe-addresses and probe-ports name, and neither is set; add one, or set probe = off"),
        // A list without listed mode.
        ("[rocks]\nlegacy-auth = yes\nprobe = everywhere\nprobe-addresses = 10.1.0.0/16\n", 4,
         "probe-addresses: applies only with probe = listed, and probe is everywhere; set probe = listed, or remove this line"),
        ("[rocks]\nlegacy-auth = yes\nprobe = off\nprobe-ports = 22\n", 4,
         "probe-ports: applies only with probe = listed, and probe is off; set probe = listed, or remove this line"),
        ("[rocks]\nlegacy-auth = yes\n\n\nprobe-ports = 22\n", 5,
         "probe-ports: applies only with probe = listed, and probe is off (the default); set probe = listed, or remove this line"),
        // Several problems: the first line is reported (here the list, before the probe line it depends on).
        ("[rocks]\nprobe-ports = 22\nserve-ports = 22\nprobe = everywhere\n", 2,
         "probe-ports: applies only with probe = listed, and probe is everywhere; set probe = listed, or remove this line"),
        ("[rocks]\nprobe = listed\n", 2, "probe: \(needsLegacyAuth)"),
        // Checked after the whole file: a key later in the file, or in another section, counts.
        ("[rocks]\nprobe = everywhere\n[policy]\nexclude-ports = 25\n[rocks]\nlegacy-auth = no\n", 2, "probe: \(needsLegacyAuth)"),
    ])
    func rocksKeysThatContradictEachOtherAreErrorsOnTheirLine(text: String, line: Int, message: String) {
        #expect(throws: ConfigurationError(line: line, message: message)) { try ConfigurationParser.parse(text) }
    }

    @Test func aRocksKeyAcrossTwoRocksHeadersIsStillSetTwice() {
        #expect(throws: ConfigurationError(line: 4, message: "'probe' is set twice in [rocks]")) {
            try ConfigurationParser.parse("[rocks]\nprobe = off\n[rocks]\nprobe = off\n")
        }
    }

    @Test func rocksProblemsComeBeforeTheGroupLookup() {
        // Both are found after the whole file is read; the file's own contradiction is reported first.
        let text = "[control]\nstatus-group = operators\n[rocks]\nserve-ports = 22\n"
        #expect(throws: ConfigurationError(line: 4, message: "serve-ports: \(Self.needsLegacyAuth)")) {
            try ConfigurationParser.parse(text, resolveGroup: { _ in nil })
        }
    }
}
