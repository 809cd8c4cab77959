// rackd — the fuzz targets' bodies, run over the capture fixture and seeded random inputs on every test
// run, so they keep compiling and keep not trapping even where libFuzzer is not built. Inputs that once
// crashed a fuzzer belong in `regressionInputs` (nio-ssh's FuzzResultTests pattern).

import Foundation
import RackEngine
import RackFuzzing
import Testing

@Suite struct FuzzBodyTests {
    /// Inputs that crashed a fuzz target once, as hex, with the target. None has so far.
    static let regressionInputs: [(target: String, hex: String)] = []

    static func capturePackets() throws -> [[UInt8]] {
        let url = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let file = try [UInt8](Data(contentsOf: url.appendingPathComponent("rocks-basic.pcap")))
        return try PcapReader.ipPackets(in: file).map(\.bytes)
    }

    @Test func everyBodySurvivesTheCapture() throws {
        for packet in try Self.capturePackets() {
            packet.withUnsafeBytes { bytes in
                FuzzBodies.wire(bytes)
                FuzzBodies.options(UnsafeRawBufferPointer(rebasing: bytes[min(40, bytes.count)...]))
                FuzzBodies.racksMessages(bytes)
            }
        }
    }

    @Test func everyBodySurvivesRandomInput() {
        var random = SplitMix64(seed: 0xF022)
        for round in 0..<3000 {
            let bytes = random.bytes(Int(random.next() % 300))
            bytes.withUnsafeBytes { raw in
                FuzzBodies.wire(raw)
                FuzzBodies.options(raw)
                FuzzBodies.racksMessages(raw)
                FuzzBodies.rocksMessages(raw)
                if round % 10 == 0 { FuzzBodies.engine(raw) }
            }
        }
    }

    /// Real rocks init streams (the capture's, after the announcement), cut and mutated.
    @Test func rocksMessagesSurviveMutatedCaptureStreams() throws {
        var random = SplitMix64(seed: 0x60C5)
        let connections = try RocksWireTests.connections("rocks-basic.pcap")
        let streams = connections.flatMap { [Array($0.clientStream.dropFirst(16)), Array($0.serverStream.dropFirst(16))] }
            .filter { !$0.isEmpty }
        for _ in 0..<2000 {
            var stream = Array(streams[Int(random.next() % UInt64(streams.count))].prefix(Int(random.next() % 120)))
            if !stream.isEmpty && random.next() % 2 == 0 {
                stream[Int(random.next() % UInt64(stream.count))] ^= UInt8(truncatingIfNeeded: random.next())
            }
            ([UInt8(truncatingIfNeeded: random.next())] + stream).withUnsafeBytes { FuzzBodies.rocksMessages($0) }
        }
    }

    /// Genuine rocks reconnections through the body's second mode, clean and with one byte garbled, in
    /// pieces of every size the first byte can choose; then a reconnection's streams (the pick, challenge
    /// and response, the recovery messages), cut and mutated, through the first.
    @Test func rocksMessagesSurviveReconnections() {
        var random = SplitMix64(seed: 0x5EC0)
        for piece in 1...61 {
            for answering in [FuzzBodies.RocksAnswering.serverVerifies, .clientVerifies, .neither] {
                FuzzBodies.rocksReconnection(garbling: [], piece: piece, answering: answering)
                var mask = [UInt8](repeating: 0, count: 2 * 81)
                mask[2 + Int(random.next() % UInt64(mask.count - 2))] = UInt8(truncatingIfNeeded: random.next() % 255 + 1)
                FuzzBodies.rocksReconnection(garbling: mask, piece: piece, answering: answering)
            }
        }
        var server = RocksAuthenticationTests.server(.atOnce)
        var client = RocksAuthenticationTests.client(.atOnce)
        let transcript = RocksAuthenticationTests.converse(&server, &client)
        let recovery = RocksRecoveryTests.sample.bytes
        let streams = [transcript.fromServer + recovery, transcript.fromClient + recovery, Array(transcript.fromServer.dropFirst()),
                       Array(transcript.fromClient.dropFirst(44)), recovery]
        for _ in 0..<2000 {
            var stream = Array(streams[Int(random.next() % UInt64(streams.count))].prefix(Int(random.next() % 140)))
            if !stream.isEmpty && random.next() % 2 == 0 {
                stream[Int(random.next() % UInt64(stream.count))] ^= UInt8(truncatingIfNeeded: random.next())
            }
            ([UInt8(truncatingIfNeeded: random.next() & 0x7F)] + stream).withUnsafeBytes { FuzzBodies.rocksMessages($0) }
        }
    }

    @Test func engineSurvivesMutatedCaptureSequences() throws {
        var random = SplitMix64(seed: 0xE9)
        let packets = try Self.capturePackets()
        for _ in 0..<200 {
            var input: [UInt8] = []
            for _ in 0..<8 {
                var packet = Array(packets[Int(random.next() % UInt64(packets.count))].prefix(254))
                if packet.count % 2 == 1 { packet.append(0) }
                if !packet.isEmpty { packet[Int(random.next() % UInt64(packet.count))] ^= UInt8(truncatingIfNeeded: random.next()) }
                input.append(UInt8(packet.count / 2) | (random.next() % 2 == 0 ? 0 : 0x80))
                input += packet
            }
            input.withUnsafeBytes { FuzzBodies.engine($0) }
        }
    }

    /// rackctl's requests and a few near misses, in every piece size, cut and with one byte changed.
    @Test func controlRequestsSurviveMutatedRequests() {
        var random = SplitMix64(seed: 0xC7)
        let lines = [#"{"command":"status"}"#, #"{"all":true,"command":"suspend"}"#, #"{"command":"resume","id":3}"#,
                     #"{"command":"resume","id":-3}"#, #"{"command":"halt"}"#].map { Array($0.utf8) + [0x0A] }
        for piece in 0..<64 {
            for line in lines { ([UInt8(piece)] + line).withUnsafeBytes { FuzzBodies.controlRequests($0) } }
        }
        for _ in 0..<3000 {
            var line = Array(lines[Int(random.next() % UInt64(lines.count))].prefix(Int(random.next() % 40)))
            if !line.isEmpty && random.next() % 2 == 0 {
                line[Int(random.next() % UInt64(line.count))] = UInt8(truncatingIfNeeded: random.next())
            }
            ([UInt8(truncatingIfNeeded: random.next())] + line).withUnsafeBytes { FuzzBodies.controlRequests($0) }
        }
        ([0] + [UInt8](repeating: 0x5B, count: 5000)).withUnsafeBytes { FuzzBodies.controlRequests($0) }
    }

    @Test func regressionInputsNoLongerCrash() {
        for input in Self.regressionInputs {
            let bytes = stride(from: 0, to: input.hex.count, by: 2).map {
                let start = input.hex.index(input.hex.startIndex, offsetBy: $0)
                return UInt8(input.hex[start..<input.hex.index(start, offsetBy: 2)], radix: 16)!
            }
            bytes.withUnsafeBytes { raw in
                switch input.target {
                case "wire": FuzzBodies.wire(raw)
                case "options": FuzzBodies.options(raw)
                case "racks-messages": FuzzBodies.racksMessages(raw)
                case "rocks-messages": FuzzBodies.rocksMessages(raw)
                case "control-requests": FuzzBodies.controlRequests(raw)
                default: FuzzBodies.engine(raw)
                }
            }
        }
    }
}
