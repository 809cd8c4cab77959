// rackd — reads rackd.conf.
//
// The format is INI-like and documented in docs/configuration.md:
//
//     # a comment
//     [daemon]
//     mode = racks          # or passthrough
//     queue = 3939
//
// Every error names the line and says what would have been accepted, so `rackd --check-config`
// can tell the operator exactly what to fix.

/// A problem in a configuration file, with the line it is on.
public struct ConfigurationError: Error, Equatable, CustomStringConvertible {
    /// 1-based line number, or 0 for a problem with the file as a whole.
    public var line: Int
    public var message: String

    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }

    public var description: String { line > 0 ? "line \(line): \(message)" : message }
}

/// Parses the text of a configuration file into a `Configuration`.
public enum ConfigurationParser {
    /// Parses `text`; unknown sections, unknown keys, repeated keys and bad values are errors, and so are
    /// keys that contradict each other (checked after the whole file is read, on the offending key's line).
    /// `resolveGroup` looks a group name up in the system's group database (the daemon passes getgrnam);
    /// without it a `status-group` is kept by name only.
    public static func parse(_ text: String, resolveGroup: ((String) -> UInt32?)? = nil) throws(ConfigurationError)
        -> Configuration
    {
        var configuration = Configuration()
        var section: String? = nil
        /// The line of every key set, by "section.key".
        var lines: [String: Int] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            let line = stripComment(Substring(rawLine)).trimmingSpaces
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    throw ConfigurationError(line: lineNumber, message: "malformed section header '\(line)'; write it as [name]")
                }
                let name = String(line.dropFirst().dropLast()).trimmingSpaces
                guard sections[name] != nil else {
                    throw ConfigurationError(
                        line: lineNumber,
                        message: "unknown section [\(name)]; known sections: \(sections.keys.sorted().map { "[\($0)]" }.joined(separator: ", "))"
                    )
                }
                section = name
                continue
            }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigurationError(line: lineNumber, message: "expected 'key = value', found '\(line)'")
            }
            let key = String(line[..<equals]).trimmingSpaces
            let value = String(line[line.index(after: equals)...]).trimmingSpaces
            guard let section else {
                throw ConfigurationError(line: lineNumber, message: "'\(key)' is outside any section; put it under [daemon] or another section")
            }
            guard let setter = sections[section]?[key] else {
                let known = sections[section]!.keys.sorted().joined(separator: ", ")
                throw ConfigurationError(line: lineNumber, message: "unknown key '\(key)' in [\(section)]; known keys: \(known)")
            }
            guard !value.isEmpty else {
                throw ConfigurationError(line: lineNumber, message: "'\(key)' has no value")
            }
            guard lines.updateValue(lineNumber, forKey: "\(section).\(key)") == nil else {
                throw ConfigurationError(line: lineNumber, message: "'\(key)' is set twice in [\(section)]")
            }
            do {
                try setter(&configuration, value)
            } catch let problem {
                throw ConfigurationError(line: lineNumber, message: "\(key): \(problem.message)")
            }
        }
        if let problem = rocksProblems(configuration.rocks, lines: lines).min(by: { $0.line < $1.line }) {
            throw problem
        }
        if let resolveGroup, var group = configuration.statusGroup {
            guard let id = resolveGroup(group.name) else {
                throw ConfigurationError(
                    line: lines["control.status-group"] ?? 0,
                    message: "status-group: no group '\(group.name)' on this system; create it (groupadd \(group.name)) or remove the line")
            }
            group.id = id
            configuration.statusGroup = group
        }
        return configuration
    }

    // MARK: The keys

    private struct ValueProblem: Error { var message: String }
    private typealias Setter = @Sendable (inout Configuration, String) throws(ValueProblem) -> Void

    private static let sections: [String: [String: Setter]] = [
        "daemon": [
            "mode": { config, value throws(ValueProblem) in config.mode = try choice(value) },
            "rules": { config, value throws(ValueProblem) in config.rules = try choice(value) },
            "queue": { config, value throws(ValueProblem) in
                config.queueNumber = try integer(value, in: 0...65535, as: UInt16.self)
            },
            "queue-max-length": { config, value throws(ValueProblem) in
                config.queueMaxLength = try integer(value, in: 16...1_000_000, as: UInt32.self)
            },
            "firewall-mark": { config, value throws(ValueProblem) in
                config.firewallMark = try integer(value, in: 1...0xFFFF_FFFF, as: UInt32.self)
            },
        ],
        "heartbeat": [
            "interval": { config, value throws(ValueProblem) in
                config.heartbeatInterval = try duration(value, in: .milliseconds(100) ... .seconds(60))
            },
            "misses": { config, value throws(ValueProblem) in
                config.heartbeatMisses = Int(try integer(value, in: 1...100, as: UInt8.self))
            },
        ],
        "suspension": [
            "maximum": { config, value throws(ValueProblem) in
                config.maximumSuspension = try duration(value, in: .seconds(1) ... .seconds(365 * 24 * 3600))
            }
        ],
        "limits": [
            "suspended-per-peer": { config, value throws(ValueProblem) in
                config.maximumSuspendedPerPeer = Int(try integer(value, in: 1...1_000_000, as: UInt32.self))
            },
            "suspended-total": { config, value throws(ValueProblem) in
                config.maximumSuspendedTotal = Int(try integer(value, in: 1...1_000_000, as: UInt32.self))
            },
        ],
        "control": [
            "socket": { config, value throws(ValueProblem) in config.controlSocketPath = try socketPath(value) },
            "status-group": { config, value throws(ValueProblem) in
                config.statusGroup = StatusGroup(name: try groupName(value))
            },
        ],
        "policy": [
            "manage-ports": { config, value throws(ValueProblem) in config.policy.managePorts = try portList(value) },
            "exclude-ports": { config, value throws(ValueProblem) in config.policy.excludePorts = try portList(value) },
            "exclude-addresses": { config, value throws(ValueProblem) in
                config.policy.excludeAddresses = try prefixList(value)
            },
            "ordinary-cache": { config, value throws(ValueProblem) in
                config.ordinaryCacheLifetime = try duration(value, in: .zero ... .seconds(86400))
            },
        ],
        "rocks": [
            "legacy-auth": { config, value throws(ValueProblem) in
                config.rocks.legacyAuthentication = try yesOrNo(value)
            },
            "probe": { config, value throws(ValueProblem) in config.rocks.probing = try choice(value) },
            "probe-addresses": { config, value throws(ValueProblem) in
                config.rocks.probeAddresses = try prefixList(value, ipv4Only: "rocks 2.4 speaks IPv4 only")
            },
            "probe-ports": { config, value throws(ValueProblem) in config.rocks.probePorts = try portList(value) },
            "serve-ports": { config, value throws(ValueProblem) in config.rocks.servePorts = try portList(value) },
            "heartbeat-port": { config, value throws(ValueProblem) in
                config.rocks.heartbeatPort = try integer(value, in: 0...65535, as: UInt16.self)
            },
            "reconnection-port": { config, value throws(ValueProblem) in
                config.rocks.reconnectionPort = try integer(value, in: 0...65535, as: UInt16.self)
            },
            "negative-cache": { config, value throws(ValueProblem) in
                config.rocks.negativeCacheLifetime = try duration(value, in: .seconds(1) ... .seconds(30 * 86400))
            },
            "conntrack": { config, value throws(ValueProblem) in config.rocks.conntrack = try yesOrNo(value) },
        ],
    ]

    // MARK: Keys that depend on each other

    /// What is wrong with `[rocks]` as a whole, each problem on the line of the key that must change.
    private static func rocksProblems(_ rocks: RocksSettings, lines: [String: Int]) -> [ConfigurationError] {
        var problems: [ConfigurationError] = []
        /// A problem with `key`, if the file sets it.
        func problem(_ key: String, _ message: String) {
            guard let line = lines["rocks.\(key)"] else { return }
            problems.append(ConfigurationError(line: line, message: "\(key): \(message)"))
        }
        if !rocks.legacyAuthentication {
            let weak =
                "rocks peers need legacy-auth = yes (rocks' 128-bit DH and Blowfish are weak); set it, or remove this line"
            if rocks.probing != .off { problem("probe", weak) }
            problem("serve-ports", weak)
        }
        if rocks.probing == .listed && rocks.probeAddresses.isEmpty && rocks.probePorts.isEmpty {
            problem(
                "probe",
                "listed probes only what probe-addresses and probe-ports name, and neither is set; add one, or set probe = off")
        }
        if rocks.probing != .listed {
            let mode = lines["rocks.probe"] == nil ? "off (the default)" : rocks.probing.rawValue
            for key in ["probe-addresses", "probe-ports"] {
                problem(
                    key, "applies only with probe = listed, and probe is \(mode); set probe = listed, or remove this line")
            }
        }
        return problems
    }

    // MARK: Value syntax

    /// A setting that is on or off: yes or no.
    private static func yesOrNo(_ value: String) throws(ValueProblem) -> Bool {
        switch value {
        case "yes": return true
        case "no": return false
        default: throw ValueProblem(message: "'\(value)' is not one of: yes, no")
        }
    }

    private static func choice<T: RawRepresentable & CaseIterable>(_ value: String) throws(ValueProblem) -> T
    where T.RawValue == String {
        if let result = T(rawValue: value) { return result }
        let allowed = T.allCases.map(\.rawValue).joined(separator: ", ")
        throw ValueProblem(message: "'\(value)' is not one of: \(allowed)")
    }

    /// Decimal, or hexadecimal with a 0x prefix.
    private static func integer<T: FixedWidthInteger>(_ value: String, in range: ClosedRange<UInt64>, as: T.Type)
        throws(ValueProblem) -> T
    {
        let lowered = value.lowercased().replacingUnderscores
        let parsed = lowered.hasPrefix("0x") ? UInt64(lowered.dropFirst(2), radix: 16) : UInt64(lowered, radix: 10)
        guard let parsed else { throw ValueProblem(message: "'\(value)' is not a whole number") }
        guard range.contains(parsed) else {
            throw ValueProblem(message: "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return T(parsed)
    }

    /// A number with a unit: ms, s, m, h or d ("500ms", "7d").
    private static func duration(_ value: String, in range: ClosedRange<Duration>) throws(ValueProblem) -> Duration {
        let units: [(String, Duration)] = [
            ("ms", .milliseconds(1)), ("s", .seconds(1)), ("m", .seconds(60)), ("h", .seconds(3600)),
            ("d", .seconds(86400)),
        ]
        for (suffix, unit) in units where value.hasSuffix(suffix) {
            let number = value.dropLast(suffix.count)
            guard let count = Int(number), count >= 0 else { break }
            let result = unit * count
            guard range.contains(result) else {
                throw ValueProblem(message: "\(value) is out of range \(format(range.lowerBound))...\(format(range.upperBound))")
            }
            return result
        }
        throw ValueProblem(message: "'\(value)' is not a duration; write a whole number with ms, s, m, h or d, like 500ms or 7d")
    }

    private static func format(_ duration: Duration) -> String {
        let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if ms % 86_400_000 == 0 { return "\(ms / 86_400_000)d" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }

    /// An absolute path that fits a unix socket address (sun_path holds 107 bytes and a NUL).
    private static func socketPath(_ value: String) throws(ValueProblem) -> String {
        guard value.hasPrefix("/") else { throw ValueProblem(message: "'\(value)' is not an absolute path") }
        guard value.utf8.count <= 107 else {
            throw ValueProblem(message: "the path is \(value.utf8.count) bytes; a unix socket path holds at most 107")
        }
        return value
    }

    /// A group name as useradd accepts it: letters, digits, '_', '-' and '.', not starting with '-'.
    private static func groupName(_ value: String) throws(ValueProblem) -> String {
        let allowed = value.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }
        guard allowed, !value.hasPrefix("-"), value.count <= 32 else {
            throw ValueProblem(message: "'\(value)' is not a group name (letters, digits, '_', '-', '.')")
        }
        return value
    }

    /// "22, 5432, 8000-8100"
    private static func portList(_ value: String) throws(ValueProblem) -> [PortRange] {
        var ranges: [PortRange] = []
        for item in value.split(separator: ",").map({ $0.trimmingSpaces }) {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
            guard (1...2).contains(bounds.count), let lower = UInt16(bounds[0]),
                let upper = UInt16(bounds.last!), lower <= upper, lower > 0
            else {
                throw ValueProblem(message: "'\(item)' is not a port (1-65535) or a range like 8000-8100")
            }
            ranges.append(PortRange(lower, upper))
        }
        return ranges
    }

    /// "10.0.0.0/8, fd00::/8, 192.0.2.1". With `ipv4Only`, an IPv6 item is refused for that reason.
    private static func prefixList(_ value: String, ipv4Only: String? = nil) throws(ValueProblem) -> [AddressPrefix] {
        var prefixes: [AddressPrefix] = []
        for item in value.split(separator: ",").map({ $0.trimmingSpaces }) {
            let parts = item.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard (1...2).contains(parts.count), let address = IPAddress(parsing: parts[0]) else {
                throw ValueProblem(message: "'\(item)' is not an address or prefix like 10.0.0.0/8 or fd00::/8")
            }
            if let ipv4Only, !address.isIPv4 { throw ValueProblem(message: "'\(item)' is IPv6; \(ipv4Only)") }
            let maximum = address.isIPv4 ? 32 : 128
            let length = parts.count == 2 ? Int(parts[1]) : maximum
            guard let length, (0...maximum).contains(length) else {
                throw ValueProblem(message: "'\(item)' has a prefix length outside 0...\(maximum)")
            }
            prefixes.append(AddressPrefix(address, length: length))
        }
        return prefixes
    }

    private static func stripComment(_ line: Substring) -> Substring {
        guard let hash = line.firstIndex(of: "#") else { return line }
        return line[..<hash]
    }
}

extension StringProtocol {
    fileprivate var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = lastIndex(where: { !isSpace($0) })!
        return String(self[first...last])
    }

    fileprivate var replacingUnderscores: String { String(filter { $0 != "_" }) }
}
