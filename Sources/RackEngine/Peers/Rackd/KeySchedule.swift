// rackd — the cryptography of a rackd connection: key agreement, key derivation and resumption MACs.
//
// docs/protocol.md: ephemeral X25519 per connection; HKDF-SHA256 over a transcript that binds both endpoints,
// both ISNs and both public keys; HMAC-SHA256 challenge-response, with fresh nonces from both sides,
// on every resumption. Private keys come from the caller's randomness, never from a global source,
// so every exchange replays exactly in tests.

import Crypto

/// The secret every resumption of one connection is authenticated with. Its bytes never leave this
/// type: not in logs, errors, status or descriptions.
public struct ConnectionKey: Sendable, CustomStringConvertible {
    fileprivate let key: SymmetricKey

    public var description: String { "ConnectionKey(redacted)" }
}

/// What the key derivation binds: the connection as both ends saw its handshake.
public struct KeyTranscript: Sendable {
    public var client: TCPEndpoint
    public var server: TCPEndpoint
    public var clientISN: TCPSequenceNumber
    public var serverISN: TCPSequenceNumber
    public var clientPublicKey: [UInt8]
    public var serverPublicKey: [UInt8]

    /// The bytes fed to HKDF as its info: a label, then each field at a fixed length.
    var bytes: [UInt8] {
        var out = Array("rackd v1 connection key".utf8)
        for endpoint in [client, server] {
            out += endpoint.address.mappedIPv6Bytes
            out += [UInt8(endpoint.port >> 8), UInt8(endpoint.port & 0xff)]
        }
        for isn in [clientISN, serverISN] {
            let value = isn.rawValue
            out += [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
        }
        return out + clientPublicKey + serverPublicKey
    }
}

/// What the MACs of one roam handshake bind: both nonces and both ISNs as their senders chose them. Not
/// the addresses: a NAT on the new network changes them, and path validation comes from the nonces
/// (only a host that received the responder's nonce at the new address can confirm).
public struct RoamTranscript: Sendable, Equatable, Codable {
    public var roamNonce: [UInt8]
    public var roamISN: TCPSequenceNumber
    public var responseNonce: [UInt8]
    public var responseISN: TCPSequenceNumber

    var bytes: [UInt8] { roamNonce + roamISN.bigEndianBytes + responseNonce + responseISN.bigEndianBytes }
}

/// Key agreement and MACs for rackd connections.
public enum KeySchedule {
    /// The suite, as status names it: key agreement, derivation, and the resumption MAC.
    public static let suiteName = "x25519-hkdf-sha256/hmac-sha256-128"

    /// An ephemeral key pair from 32 bytes of the caller's randomness.
    public struct EphemeralKey: Sendable {
        fileprivate let privateKey: Curve25519.KeyAgreement.PrivateKey

        /// A key from 32 random bytes. Any 32 bytes are a valid X25519 private key (they are clamped).
        public init(seed: [UInt8]) {
            precondition(seed.count == 32, "an X25519 private key is 32 bytes")
            privateKey = try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: seed)
        }

        public var publicKey: [UInt8] { Array(privateKey.publicKey.rawRepresentation) }
    }

    /// Why a key agreement failed.
    public struct AgreementError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Derives the connection key from our ephemeral key and the peer's public key.
    public static func connectionKey(_ ours: EphemeralKey, peerPublicKey: [UInt8], transcript: KeyTranscript)
        throws(AgreementError) -> ConnectionKey
    {
        do {
            let peer = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: peerPublicKey)
            let secret = try ours.privateKey.sharedSecretFromKeyAgreement(with: peer)
            // A low-order public key makes the shared secret all zeros whatever our private key is, so
            // an attacker would know it. swift-crypto does not refuse it; rackd must (RFC 7748 §6.1).
            let allZero = secret.withUnsafeBytes { $0.allSatisfy { $0 == 0 } }
            if allZero { throw AgreementError(description: "key agreement failed: the peer's public key has low order") }
            let key = secret.hkdfDerivedSymmetricKey(
                using: SHA256.self, salt: [UInt8](), sharedInfo: transcript.bytes, outputByteCount: 32)
            return ConnectionKey(key: key)
        } catch let error as AgreementError {
            throw error
        } catch {
            throw AgreementError(description: "key agreement failed: the peer's public key is unusable")
        }
    }

    /// The MAC a responder sends: over the challenger's nonce, then its own.
    public static func responseMAC(_ key: ConnectionKey, challengeNonce: [UInt8], responseNonce: [UInt8]) -> [UInt8] {
        mac(key, label: "rackd v1 response", challengeNonce + responseNonce)
    }

    /// The MAC a challenger sends to confirm: over the responder's nonce, then its own.
    public static func confirmMAC(_ key: ConnectionKey, challengeNonce: [UInt8], responseNonce: [UInt8]) -> [UInt8] {
        mac(key, label: "rackd v1 confirm", responseNonce + challengeNonce)
    }

    /// The name a roaming peer gives the connection: it finds the connection without the old 4-tuple,
    /// and only holders of the key can compute it.
    public static func connectionID(_ key: ConnectionKey) -> [UInt8] {
        Array(mac(key, label: "rackd v1 connection id", []).prefix(RacksMessage.connectionIDLength))
    }

    /// The MAC of a roam response: over the roam's nonce and ISN, then the responder's.
    public static func roamResponseMAC(_ key: ConnectionKey, roam: RoamTranscript) -> [UInt8] {
        mac(key, label: "rackd v1 roam response", roam.bytes)
    }

    /// The MAC that confirms a roam, from the roaming side: the same transcript, another label.
    public static func roamConfirmMAC(_ key: ConnectionKey, roam: RoamTranscript) -> [UInt8] {
        mac(key, label: "rackd v1 roam confirm", roam.bytes)
    }

    /// Compares two MACs in constant time.
    public static func macsMatch(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// HMAC-SHA256 truncated to 128 bits, so a message fits in one TCP option.
    private static func mac(_ key: ConnectionKey, label: String, _ data: [UInt8]) -> [UInt8] {
        let code = HMAC<SHA256>.authenticationCode(for: Array(label.utf8) + data, using: key.key)
        return Array(Array(code).prefix(RacksMessage.macLength))
    }
}

extension IPAddress {
    /// 16 bytes: IPv6 as is, IPv4 as an IPv4-mapped IPv6 address, so both families hash alike.
    var mappedIPv6Bytes: [UInt8] {
        switch self {
        case .v4(let address): [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + address.bytes
        case .v6(let address): address.bytes
        }
    }
}

// Persisted (Persistence/, to rackd's state directory only, 0600): the raw key bytes. Never printed.
extension ConnectionKey: Codable {
    public init(from decoder: any Decoder) throws {
        let bytes = try [UInt8](from: decoder)
        guard bytes.count == 32 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "a connection key is 32 bytes"))
        }
        key = SymmetricKey(data: bytes)
    }

    public func encode(to encoder: any Encoder) throws {
        try key.withUnsafeBytes { Array($0) }.encode(to: encoder)
    }
}

extension KeySchedule.EphemeralKey: Codable {
    public init(from decoder: any Decoder) throws {
        let bytes = try [UInt8](from: decoder)
        guard bytes.count == 32 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "an X25519 private key is 32 bytes"))
        }
        self.init(seed: bytes)
    }

    public func encode(to encoder: any Encoder) throws {
        try Array(privateKey.rawRepresentation).encode(to: encoder)
    }
}
