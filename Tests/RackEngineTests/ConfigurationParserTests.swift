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
        ("[deamon]\n", 1, "unknown section [deamon]; known sections: [daemon]"),
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

    @Test func errorDescriptionStartsWithTheLine() {
        let error = ConfigurationError(line: 7, message: "bad")
        #expect(error.description == "line 7: bad")
    }
}
