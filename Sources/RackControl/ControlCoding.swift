// rackd — the control protocol's framing and JSON: one line per message, snake_case keys, sorted so the
// output is stable for scripts and tests.

// FoundationEssentials (JSON, no ICU) keeps rackctl small: the full Foundation links ICU's data (~40 MB).
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

public enum ControlCoding {
    /// The longest request rackd reads; real ones are under 100 bytes.
    public static let maximumRequestBytes = 4096

    /// One message as one line, ending in "\n".
    public static func line<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value)) + [0x0A]
    }

    /// The message in one line (without its "\n").
    public static func decode<T: Decodable>(_ type: T.Type, from line: some Collection<UInt8>) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: Data(line))
    }

    /// A status report as people and scripts read it (`rackctl status --json`).
    public static func prettyJSON(_ report: StatusReport) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(report), as: UTF8.self)
    }
}
