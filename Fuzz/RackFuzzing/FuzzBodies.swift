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

    /// A rocks peer's stream, read in pieces whose sizes the input's first byte chooses (1 to 61 bytes): as
    /// its init messages (after the announcement), as a reconnection's challenge, response and recovery
    /// messages, and as what either role of `RocksAuthentication` reads. Whatever a reader takes must encode
    /// back to the bytes it came from, and no reader may take more than it was given or stop short
    /// unfinished. With the first byte's top bit set, the rest instead garbles a genuine reconnection between
    /// two ends (`rocksReconnection`).
    public static func rocksMessages(_ bytes: UnsafeRawBufferPointer) {
        guard let first = bytes.first else { return }
        let piece = Int(first % 61) + 1
        let stream = Array(bytes.dropFirst())
        if first & 0x80 != 0 {
            rocksReconnection(garbling: stream, piece: piece, answering: first & 0x40 == 0 ? .serverVerifies : first & 0x20 == 0 ? .clientVerifies : .neither)
            return
        }

        // §3: init messages.
        var initReader = RocksInitReader()
        if let used = read(&initReader, stream, piece: piece, isDone: { $0.result != nil }, take: { try $0.take($1) }),
           let result = initReader.result {
            precondition(result.bytes == Array(stream.prefix(used)), "rocks init messages did not survive a round trip")
        }
        _ = RocksAnnouncement.judge(stream)
        _ = RocksAnnouncement.endsProbeAnswer(stream)
        _ = try? RocksSocketAddress(parsing: stream)

        // §5.3: a challenge, a response.
        var challengeReader = RocksLengthPrefixedReader.challenge
        if let used = read(&challengeReader, stream, piece: piece, isDone: { $0.result != nil }, take: { try $0.take($1) }),
           let body = challengeReader.result {
            let challenge = try? RocksChallenge(ciphertext: body)
            precondition(challenge?.bytes == Array(stream.prefix(used)), "a rocks challenge did not survive a round trip")
            _ = try? challenge?.plaintext(cipher: rocksCipher)
        }
        var responseReader = RocksLengthPrefixedReader.response
        if let used = read(&responseReader, stream, piece: piece, isDone: { $0.result != nil }, take: { try $0.take($1) }),
           let body = responseReader.result {
            let response = try? RocksChallengeResponse(plaintext: body)
            precondition(response?.bytes == Array(stream.prefix(used)), "a rocks response did not survive a round trip")
        }

        // §5.4: the recovery messages, and the go-back-N's length from counters the input chooses.
        var recoveryReader = RocksRecoveryReader(expectedSendBufferSize: 65536, expectedReceiveBufferSize: 65536)
        if let used = read(&recoveryReader, stream, piece: piece, isDone: { $0.result != nil }, take: { try $0.take($1) }),
           let result = recoveryReader.result {
            precondition(result.bytes == Array(stream.prefix(used)), "rocks recovery messages did not survive a round trip")
        }
        if stream.count >= 10 {
            let word = { (at: Int) in stream[at..<at + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
            let kept = Int(stream[8]) << 8 | Int(stream[9])
            if let count = try? RocksRecovery.resendCount(peerReceived: word(0), sent: word(4), kept: kept) {
                precondition(count <= kept, "a rocks go-back-N longer than the ring")
            }
        }

        // §5.2–§5.3: the stream as each role's authentication reads it.
        for role in [ConnectionRole.server, .client] {
            var authentication = RocksAuthentication(role: role, cipher: rocksCipher, random: rocksRandom,
                                                     answering: first & 0x40 == 0 ? .afterVerifying : .atOnce)
            _ = read(&authentication, stream, piece: piece, isDone: { $0.isAuthenticated }, take: { try $0.take($1) })
            _ = authentication.pollWrites()
            authentication.peerClosed()
        }
    }

    /// Which ends of a garbled reconnection answer only after verifying (never both: they would wait for
    /// each other).
    public enum RocksAnswering: Sendable {
        case serverVerifies, clientVerifies, neither
    }

    /// A genuine reconnection, server against client under one key, each direction delivered in pieces of
    /// `piece` bytes and XORed byte for byte with `garbling` (even bytes the server's stream, odd bytes the
    /// client's). Ungarbled, both must end authenticated; garbled anywhere but the pick's value, never both.
    public static func rocksReconnection(garbling mask: [UInt8], piece: Int, answering: RocksAnswering) {
        var server = RocksAuthentication(role: .server, cipher: rocksCipher, random: rocksRandom,
                                         answering: answering == .serverVerifies ? .afterVerifying : .atOnce)
        var client = RocksAuthentication(role: .client, cipher: rocksCipher, random: rocksRandom.reversed(),
                                         answering: answering == .clientVerifies ? .afterVerifying : .atOnce)
        var toClient: [UInt8] = []
        var toServer: [UInt8] = []
        var deliveredToClient = 0
        var deliveredToServer = 0
        var garbled = false
        while true {
            toClient += server.pollWrites().joined()
            toServer += client.pollWrites().joined()
            guard deliveredToClient < toClient.count || deliveredToServer < toServer.count else { break }
            var chunk = Array(toClient[deliveredToClient..<min(toClient.count, deliveredToClient + piece)])
            for index in chunk.indices where 2 * (deliveredToClient + index) < mask.count {
                let flip = mask[2 * (deliveredToClient + index)]
                chunk[index] ^= flip
                garbled = garbled || (flip != 0 && deliveredToClient + index >= RocksPick.length)
            }
            _ = try? client.take(chunk)
            deliveredToClient += chunk.count
            chunk = Array(toServer[deliveredToServer..<min(toServer.count, deliveredToServer + piece)])
            for index in chunk.indices where 2 * (deliveredToServer + index) + 1 < mask.count {
                let flip = mask[2 * (deliveredToServer + index) + 1]
                chunk[index] ^= flip
                garbled = garbled || flip != 0
            }
            _ = try? server.take(chunk)
            deliveredToServer += chunk.count
        }
        let both = server.isAuthenticated && client.isAuthenticated
        precondition(both != garbled, garbled ? "a garbled rocks reconnection authenticated both ends"
                                              : "a clean rocks reconnection did not authenticate both ends")
    }

    /// The key and random bytes of the rocks bodies: fixed, so a crash reproduces.
    static let rocksCipher = Blowfish(key: Array(0x00...0x0F))
    static let rocksRandom: [UInt8] = (0..<RocksAuthentication.randomByteCount).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }

    /// Feeds `stream` to a reader in pieces of `piece` bytes until it is done; returns how many bytes it
    /// used, or nil when it refused them. A reader must take a whole piece unless that piece finished it.
    static func read<Reader>(_ reader: inout Reader, _ stream: [UInt8], piece: Int, isDone: (Reader) -> Bool,
                             take: (inout Reader, ArraySlice<UInt8>) throws -> Int) -> Int? {
        var offset = 0
        var used = 0
        while offset < stream.count, !isDone(reader) {
            let chunk = stream[offset..<min(stream.count, offset + piece)]
            guard let taken = try? take(&reader, chunk) else { return nil }
            precondition(taken == chunk.count || (taken < chunk.count && isDone(reader)),
                         "a rocks reader took \(taken) of \(chunk.count) bytes without finishing")
            used += taken
            offset += chunk.count
        }
        return used
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
        // Ports with something behind them: the reconnection port's pending links and rocks links.
        configuration.rocks.reconnectionPort = 44000
        configuration.rocks.heartbeatPort = 43000
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
