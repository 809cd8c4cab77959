// rackd — the messages two rackds exchange, each carried in one TCP option (docs/protocol.md).
//
// Every message is an RFC 6994 experimental option, kind 253, with rackd's 16-bit ExID, then a type
// byte and a fixed-size body:
//
//     kind=253 | length | ExID (2) | type (1) | body
//
// They ride in the SYN and SYN-ACK (hello) or in segments rackd injects and the peer's rackd consumes
// (everything else), so neither byte stream ever shifts (docs/architecture.md, "Data path").

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
    /// Completes a resumption: a MAC over the responder's nonce and the challenger's. After a roam it rides
    /// in the ACK that ends the roam handshake, over that handshake's nonces and ISNs.
    case confirm(mac: [UInt8])
    /// In a SYN from a host whose address changed: "connection `connectionID` continues from here".
    /// `isn` is the SYN's sequence number as the sender chose it, so the receiver can tell whether a
    /// middlebox changed it.
    case roam(connectionID: [UInt8], nonce: [UInt8], isn: TCPSequenceNumber)
    /// In the SYN-ACK answering a roam: the responder's ISN as it chose it, its nonce, and a MAC over
    /// both nonces and both ISNs.
    case roamResponse(isn: TCPSequenceNumber, nonce: [UInt8], mac: [UInt8])

    /// rackd's ExID within experimental option kind 253 ("RA").
    public static let experimentID: UInt16 = 0x5241
    public static let version: UInt8 = 1
    public static let nonceLength = 16
    public static let macLength = 16
    public static let publicKeyLength = 32
    public static let connectionIDLength = 8
    /// The roam response's nonce is shorter so that ISN, nonce and MAC fit the 40 bytes of a SYN-ACK's
    /// options; 96 fresh bits are plenty for a nonce.
    public static let roamResponseNonceLength = 12

    private enum TypeCode: UInt8 {
        case hello = 1, key = 2, challenge = 3, response = 4, confirm = 5, roam = 6, roamResponse = 7
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
        case .roam(let connectionID, let nonce, let isn):
            body = [TypeCode.roam.rawValue] + connectionID + nonce + isn.bigEndianBytes
        case .roamResponse(let isn, let nonce, let mac):
            body = [TypeCode.roamResponse.rawValue] + isn.bigEndianBytes + nonce + mac
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
        case .roam:
            try expect(Self.connectionIDLength + Self.nonceLength + 4)
            let isnAt = Self.connectionIDLength + Self.nonceLength
            self = .roam(connectionID: Array(body[..<Self.connectionIDLength]),
                         nonce: Array(body[Self.connectionIDLength..<isnAt]),
                         isn: TCPSequenceNumber(bigEndianBytes: body[isnAt...]))
        case .roamResponse:
            try expect(4 + Self.roamResponseNonceLength + Self.macLength)
            let macAt = 4 + Self.roamResponseNonceLength
            self = .roamResponse(isn: TCPSequenceNumber(bigEndianBytes: body[..<4]),
                                 nonce: Array(body[4..<macAt]), mac: Array(body[macAt...]))
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

extension TCPSequenceNumber {
    /// The number as 4 bytes in network order.
    var bigEndianBytes: [UInt8] {
        [UInt8(rawValue >> 24), UInt8((rawValue >> 16) & 0xff), UInt8((rawValue >> 8) & 0xff), UInt8(rawValue & 0xff)]
    }

    /// A number from exactly 4 bytes in network order.
    init(bigEndianBytes bytes: ArraySlice<UInt8>) {
        self.init(bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
    }
}
