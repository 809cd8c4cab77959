// rackd — what each fuzz target does with one input. Shared by the libFuzzer binaries and by the unit
// tests that replay inputs which once crashed (nio-ssh's FuzzResultTests pattern).
//
// Every body feeds bytes from the network to a parser and may only return or throw: a trap is a bug.

import RackEngine

public enum FuzzBodies {
    /// Wire views: IPv4/IPv6 + TCP validation, every accessor, options, checksums, the Repr parser.
    public static func wire(_ bytes: UnsafeRawBufferPointer) {
        guard let packet = try? IPPacketView(validating: bytes) else { return }
        _ = packet.source
        _ = packet.destination
        _ = packet.tcp.flags
        _ = packet.tcp.payload.count
        _ = packet.verifyChecksums(tcpChecksum: .complete)
        _ = packet.tcp.verifyPartialChecksum(pseudoHeaderSum: packet.pseudoHeaderSum)
        _ = try? TCPOptions.decode(packet.tcp.options)
        _ = try? TCPSegmentRepr(parsing: packet)
        // The in-place editing path, on a copy.
        var copy = Array(bytes)
        copy.withUnsafeMutableBytes { mutableBytes in
            guard let mutable = try? MutableIPPacketView(validating: mutableBytes) else { return }
            _ = try? mutable.tcp.shiftSACKBlocks(by: TCPSequenceOffset(from: TCPSequenceNumber(1), to: TCPSequenceNumber(0x8000_0001)), updatingChecksum: true)
            mutable.fillChecksums()
        }
    }

    /// A raw TCP option area (0 to 40 bytes in real segments; any length here).
    public static func options(_ bytes: UnsafeRawBufferPointer) {
        var iterator = TCPOptionIterator(bytes)
        while let option = try? iterator.nextWithOffset() {
            _ = option.option.encodedLength
        }
        if let options = try? TCPOptions.decode(bytes) {
            var out = [UInt8](repeating: 0, count: 64)
            out.withUnsafeMutableBytes { _ = try? TCPOptions.encode(options, into: $0) }
        }
        _ = try? TCPOptions.locateSACKBlocks(in: bytes)
    }

    /// rackd's own messages, as they arrive in an option area.
    public static func racksMessages(_ bytes: UnsafeRawBufferPointer) {
        if let message = try? RacksMessage.find(in: bytes) {
            // Whatever decodes must encode back to an option that decodes to the same message.
            let again = try? RacksMessage(option: message.option)
            precondition(again == message, "rackd message did not survive an encode/decode round trip")
        }
    }

    /// A rocks peer's stream after the announcement: its init messages read in pieces whose sizes the
    /// input's first byte chooses; whatever is read must encode back to the bytes it came from.
    public static func rocksMessages(_ bytes: UnsafeRawBufferPointer) {
        guard let first = bytes.first else { return }
        let piece = Int(first % 61) + 1
        let stream = Array(bytes.dropFirst())
        var reader = RocksInitReader()
        var offset = 0
        var used = 0
        while offset < stream.count, reader.result == nil {
            let chunk = stream[offset..<min(stream.count, offset + piece)]
            guard let taken = try? reader.take(chunk) else { return }
            used += taken
            offset += chunk.count
        }
        if let result = reader.result {
            precondition(result.bytes == Array(stream.prefix(used)), "rocks init messages did not survive a round trip")
        }
        _ = RocksAnnouncement.judge(stream)
        _ = RocksAnnouncement.endsProbeAnswer(stream)
        _ = try? RocksSocketAddress(parsing: stream)
    }

    /// The whole engine, in racks mode with rocks peers probed and served on every port, fed packets in
    /// both directions at advancing times; every probe it asks for is answered (a rock or not, as the
    /// input says), and heartbeat datagrams come from the addresses the packets name.
    public static func engine(_ bytes: UnsafeRawBufferPointer) {
        var configuration = Configuration()
        configuration.rocks.legacyAuthentication = true
        configuration.rocks.probing = .listed
        configuration.rocks.probePorts = [PortRange(1, 65535)]
        configuration.rocks.servePorts = [PortRange(1, 65535)]
        var engine = HostEngine(configuration: configuration, random: FixedRandom())
        var offset = 0
        var now = EngineInstant.seconds(1)
        var probes: [RocksProbeRequest] = []
        // The input is a sequence of records: direction/length byte, then that many packet bytes.
        while offset < bytes.count {
            let header = bytes[offset]
            offset += 1
            let length = min(Int(header & 0x7F) * 2, bytes.count - offset)
            var packet = Array(bytes[offset..<(offset + length)])
            offset += length
            now = now + .milliseconds(Int64(header))
            let output = packet.withUnsafeMutableBytes {
                engine.handlePacket($0, direction: header & 0x80 == 0 ? .outbound : .inbound, now: now)
            }
            probes += output.probes
            if header & 0x01 == 1, let probe = probes.popLast() {
                _ = engine.handleProbeResult(probe, outcome: header & 0x02 == 0 ? .rock : .notRock(reason: "fuzz"), now: now)
            }
            packet.withUnsafeBytes { raw in
                if let view = try? IPPacketView(validating: raw) {
                    _ = engine.handleDatagram(raw, from: view.sourceEndpoint, now: now)
                }
            }
            _ = engine.handleTimeout(now: now)
        }
    }
}

/// A generator that always gives the same sequence, so a crashing input reproduces.
struct FixedRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64 = 0x5241_636b
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state
    }
}

/// Runs a fuzz body over files named on the command line: the replay mode of a fuzz binary built
/// without libFuzzer, and a way to check a crash input after a fix.
public enum FuzzReplay {
    public static func main(_ body: (UnsafeRawBufferPointer) -> Void, arguments: [String]) -> Int32 {
        var count = 0
        for path in arguments.dropFirst() {
            guard let bytes = readFile(path) else {
                print("cannot read \(path)")
                return 1
            }
            bytes.withUnsafeBytes(body)
            count += 1
        }
        print("replayed \(count) input(s) without a crash")
        return 0
    }

    private static func readFile(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let read = fread(&chunk, 1, chunk.count, file)
            if read <= 0 { break }
            bytes += chunk[0..<read]
        }
        return bytes
    }
}

#if canImport(Glibc)
import Glibc
#endif
