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
        ("[deamon]\n", 1, "unknown section [deamon]; known sections: [control], [daemon], [heartbeat], [limits], [policy], [suspension]"),
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
}
