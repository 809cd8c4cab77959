// rackd — the kernel-messages fuzz body (Fuzz/fuzz-kernel-messages) over the recorded datagrams, cut and
// mutated, and over random bytes: every decoder returns, whatever it is given.

import Foundation
import Glibc
import RackDaemon
import Testing

@Suite struct KernelMessagesFuzzBodyTests {
    static let recordings = [
        "inet-diag-ipv4.bin", "inet-diag-ipv6.bin", "nfqueue-syn.bin", "nfqueue-data-truncated.bin",
        "route-links.bin", "route-addresses.bin", "route-address-added.bin", "route-address-removed.bin",
        "route-dad-done.bin", "route-link-down.bin", "route-link-up.bin",
        "routes-default-added.bin", "routes-address-added.bin", "routes-default-deleted.bin",
        "nftables-install.bin", "nftables-delete-element.bin", "nftables-flush-ruleset.bin",
    ]

    /// SplitMix64, so the mutations repeat exactly.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test func recordingsCutAndMutatedNeverTrap() throws {
        var random = Random(state: 0x4B45_524E)
        for name in Self.recordings {
            let recording = try Fixture.bytes(name)
            recording.withUnsafeBytes { KernelMessagesFuzzBody.run($0) }
            for _ in 0..<300 {
                var mutated = Array(recording.prefix(Int(random.next() % UInt64(recording.count + 1))))
                for _ in 0..<Int(random.next() % 4) where !mutated.isEmpty {
                    mutated[Int(random.next() % UInt64(mutated.count))] = UInt8(truncatingIfNeeded: random.next())
                }
                mutated.withUnsafeBytes { KernelMessagesFuzzBody.run($0) }
            }
        }
    }

    /// Inputs libFuzzer found to trap (Fuzz/crashes/kernel-messages/), kept so they never trap again.
    static let regressionInputs = [
        // An NLMSG_ERROR whose code is Int32.min: InetDiagAnswer negated it (arithmetic overflow).
        "NAAAAAIAqwD//wAAAAAAAAAAAIAAAAAFAAsAAAAAAAAAAAAAAAAAAAAAwLgAAAgAOlAAAAAOCgAAAAAAALgAAKUFAAqIAPoAAgAAAHQAAAAYAAAG",
    ]

    @Test func regressionInputsNeverTrap() throws {
        for encoded in Self.regressionInputs {
            let bytes = try #require(Data(base64Encoded: encoded))
            bytes.withUnsafeBytes { KernelMessagesFuzzBody.run($0) }
        }
    }

    @Test func anErrorCodeNoErrnoCanBeReadsAsEPROTO() {
        for (code, expected) in [(Int32.min, -EPROTO), (5, -EPROTO), (-4096, -EPROTO), (-4095, -4095), (-2, -2), (0, 0)] {
            var message: [UInt8] = [20, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]  // type 2: NLMSG_ERROR
            withUnsafeBytes(of: code.littleEndian) { message += $0 }
            let read = message.withUnsafeBytes { bytes in
                var messages = NetlinkMessages(bytes)
                return messages.next()?.errorCode
            }
            #expect(read == expected, "code \(code)")
        }
    }

    @Test func randomBytesNeverTrap() {
        var random = Random(state: 7)
        for _ in 0..<2000 {
            let bytes = (0..<Int(random.next() % 400)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            bytes.withUnsafeBytes { KernelMessagesFuzzBody.run($0) }
        }
    }
}
