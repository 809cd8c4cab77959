// rackd — the bytes of one state file, and the checks that decide whether a file read back is trusted
// (docs/restarts.md).
//
//     rackd-state 1\n                  magic and format version
//     sha256 <64 hex digits>\n         of everything after this line
//     {...}                            the record as JSON
//
// A file is written whole to a temporary name and renamed over the old one (StateDirectory.swift), so a
// crash leaves the old or the new file. The checksum still guards against what rename cannot: a file
// cut short by a full /run, an editor, another program's file under the same name. Anything that fails
// a check is refused: rackd logs why and starts that connection clean rather than trust it. Pure: no
// I/O here.

import Crypto
import RackEngine

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

enum StateFileFormat {
    static let magic = "rackd-state"
    static let version = 1

    /// Why a file was not trusted.
    struct Refusal: Error, CustomStringConvertible {
        var description: String
    }

    static func encode<Record: Encodable>(_ record: Record) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = Array(try encoder.encode(record))
        let digest = SHA256.hash(data: body).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        return Array("\(magic) \(version)\nsha256 \(digest)\n".utf8) + body
    }

    static func decode<Record: Decodable>(_ type: Record.Type, from bytes: [UInt8]) throws(Refusal) -> Record {
        var lines = bytes.split(separator: 0x0A, maxSplits: 2, omittingEmptySubsequences: false)
        guard lines.count == 3 else {
            throw Refusal(description: "not a rackd state file (no header); was it written by another program?")
        }
        let header = String(decoding: lines[0], as: UTF8.self)
        guard header.hasPrefix(magic + " ") else {
            throw Refusal(description: "not a rackd state file (first line is not '\(magic) N')")
        }
        guard header == "\(magic) \(version)" else {
            throw Refusal(description: "state format '\(header.dropFirst(magic.count + 1))' is not this rackd's (\(version)); written by another version")
        }
        let checksumLine = String(decoding: lines[1], as: UTF8.self)
        let body = Array(lines.removeLast())
        let digest = SHA256.hash(data: body).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        guard checksumLine == "sha256 \(digest)" else {
            throw Refusal(description: "checksum does not match the contents (\(body.count) bytes): the file is damaged or cut short")
        }
        do {
            return try JSONDecoder().decode(type, from: Data(body))
        } catch {
            throw Refusal(description: "contents do not decode as a connection record: \(error)")
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
