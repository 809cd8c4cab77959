// rackd — the messages two rackds exchange, each carried in one TCP option (docs/protocol.md).
//
// Every message is an RFC 6994 experimental option, kind 253, with rackd's 16-bit ExID, then a type
// byte and a fixed-size body:
//
//     kind=253 | length | ExID (2) | type (1) | body
//
// They ride in the SYN and SYN-ACK (hello) or in segments rackd injects and the peer's rackd consumes
// (everything else), so neither byte stream ever shifts (DESIGN §4).

/// One rackd protocol message.
public enum RacksMessage: Equatable, Sendable {
    /// In a SYN or SYN-ACK: "rackd runs here". The body is the protocol version.
    case hello(version: UInt8)
    /// An ephemeral X25519 public key. `haveYourKey`: the sender already holds the receiver's key.
    /// `wantReply`: the sender has not finished and asks to be answered.
    case key(publicKey: [UInt8], haveYourKey: Bool, wantReply: Bool)
    /// "Prove you hold the connection key": a fresh nonce, sent while suspended.
    case challenge(nonce: [UInt8])
    /// The answer to a challenge: the responder's own fresh nonce and a MAC over both nonces.
    case response(nonce: [UInt8], mac: [UInt8])
    /// Completes a resumption: a MAC over the responder's nonce and the challenger's.
    case confirm(mac: [UInt8])

    /// rackd's ExID within experimental option kind 253 ("RA").
    public static let experimentID: UInt16 = 0x5241
    public static let version: UInt8 = 1
    public static let nonceLength = 16
    public static let macLength = 16
    public static let publicKeyLength = 32

    private enum TypeCode: UInt8 {
        case hello = 1, key = 2, challenge = 3, response = 4, confirm = 5
    }

    /// The message as a TCP option.
    public var option: TCPOption {
        var body: [UInt8]
        switch self {
        case .hello(let version):
            body = [TypeCode.hello.rawValue, version]
        case .key(let publicKey, let haveYourKey, let wantReply):
            body = [TypeCode.key.rawValue, (haveYourKey ? 1 : 0) | (wantReply ? 2 : 0)] + publicKey
        case .challenge(let nonce):
            body = [TypeCode.challenge.rawValue] + nonce
        case .response(let nonce, let mac):
            body = [TypeCode.response.rawValue] + nonce + mac
        case .confirm(let mac):
            body = [TypeCode.confirm.rawValue] + mac
        }
        // Every body fits TCPOptionData's 38 bytes by construction of the lengths above.
        return .experimental(kind: .experiment1, exid: Self.experimentID, data: TCPOptionData(body)!)
    }

    /// Decodes rackd's message from one option. Returns nil for an option that is not rackd's; throws
    /// for one that is rackd's but malformed (the caller drops the segment: it was meant for rackd).
    public init?(option: TCPOption) throws(WireError) {
        guard case .experimental(.experiment1, Self.experimentID, let data) = option else { return nil }
        let bytes = Array(data)
        guard let first = bytes.first, let type = TypeCode(rawValue: first) else {
            throw WireError(.badOption, "rackd option with unknown message type \(bytes.first.map(String.init) ?? "(none)")")
        }
        let body = Array(bytes.dropFirst())
        func expect(_ length: Int) throws(WireError) {
            guard body.count == length else {
                throw WireError(.badOption, "rackd \(type) message has a \(body.count)-byte body, expected \(length)")
            }
        }
        switch type {
        case .hello:
            try expect(1)
            self = .hello(version: body[0])
        case .key:
            try expect(1 + Self.publicKeyLength)
            self = .key(publicKey: Array(body[1...]), haveYourKey: body[0] & 1 != 0, wantReply: body[0] & 2 != 0)
        case .challenge:
            try expect(Self.nonceLength)
            self = .challenge(nonce: body)
        case .response:
            try expect(Self.nonceLength + Self.macLength)
            self = .response(nonce: Array(body[..<Self.nonceLength]), mac: Array(body[Self.nonceLength...]))
        case .confirm:
            try expect(Self.macLength)
            self = .confirm(mac: body)
        }
    }

    /// Finds rackd's message among a segment's options. Returns nil when there is none.
    public static func find(in options: UnsafeRawBufferPointer) throws(WireError) -> RacksMessage? {
        var iterator = TCPOptionIterator(options)
        while let option = try iterator.next() {
            if let message = try RacksMessage(option: option) { return message }
        }
        return nil
    }
}
