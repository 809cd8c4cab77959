// rackd — reading the recorded netlink fixtures (Fixtures/README.md) and cutting their messages.

import Foundation
import RackDaemon
import Testing

enum Fixture {
    /// The bytes of a fixture file.
    static func bytes(_ name: String) throws -> [UInt8] {
        let url = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return try [UInt8](Data(contentsOf: url.appendingPathComponent(name)))
    }

    /// The lines of a notes file, each split at spaces.
    static func notes(_ name: String) throws -> [[String]] {
        String(decoding: try bytes(name), as: UTF8.self).split(separator: "\n").map {
            $0.split(separator: " ").map(String.init)
        }
    }

    /// Each message of `bytes`, header included, as bytes of its own.
    static func messages(in bytes: [UInt8]) -> [[UInt8]] {
        bytes.withUnsafeBytes { buffer in
            var walk = NetlinkMessages(buffer)
            var found: [[UInt8]] = []
            while let message = walk.next() {
                let start = message.payloadOffset - NetlinkMessage.headerSize
                found.append(Array(buffer[start..<(message.payloadOffset + message.payload.count)]))
            }
            #expect(!walk.isMalformed)
            return found
        }
    }

    /// Runs `body` on the one message `bytes` holds.
    static func withMessage<Result>(_ bytes: [UInt8], _ body: (NetlinkMessage) throws -> Result) throws -> Result {
        try bytes.withUnsafeBytes { buffer in
            var walk = NetlinkMessages(buffer)
            let first = walk.next()
            let message = try #require(first)
            return try body(message)
        }
    }

    /// The message with its payload cut to `length` bytes, its header's length field saying so.
    static func cut(_ message: [UInt8], payloadLength length: Int) -> [UInt8] {
        var bytes = Array(message[0..<(NetlinkMessage.headerSize + length)])
        withUnsafeBytes(of: UInt32(bytes.count)) { bytes.replaceSubrange(0..<4, with: $0) }
        return bytes
    }

    /// The offsets within a message's payload at which an attribute ends: a payload cut there is complete.
    static func attributeBoundaries(_ message: [UInt8], fixedHeaderSize: Int) throws -> Set<Int> {
        try withMessage(message) { message in
            var ends: Set<Int> = [fixedHeaderSize]
            var walk = NetlinkAttributes(message.payload, after: fixedHeaderSize)
            while let attribute = walk.next() {
                let end = attribute.payloadOffset + attribute.payload.count
                ends.insert(end)
                ends.insert((end + 3) & ~3)
            }
            return ends
        }
    }

    /// The message with a 16-bit field written at `offset` (native byte order).
    static func setting(_ value: UInt16, at offset: Int, in message: [UInt8]) -> [UInt8] {
        var bytes = message
        withUnsafeBytes(of: value) { bytes.replaceSubrange(offset..<(offset + 2), with: $0) }
        return bytes
    }
}
