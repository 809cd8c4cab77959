// rackd — addresses from text, for the configuration file and the control socket.

extension IPAddress {
    /// Parses "192.0.2.1" or an IPv6 address in any RFC 4291 text form ("fd00::1", "::ffff:192.0.2.1").
    public init?(parsing text: String) {
        if let v4 = IPv4Address(parsing: text) {
            self = .v4(v4)
        } else if let v6 = IPv6Address(parsing: text) {
            self = .v6(v6)
        } else {
            return nil
        }
    }
}

extension IPv4Address {
    /// Parses dotted-quad text: four decimal numbers 0-255, no leading zeros beyond "0".
    public init?(parsing text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCIIDigit),
                part.count == 1 || part.first != "0", let value = UInt8(part)
            else { return nil }
            bytes.append(value)
        }
        self.init(bytes[0], bytes[1], bytes[2], bytes[3])
    }
}

extension IPv6Address {
    /// Parses RFC 4291 text: eight hex groups, one "::" for a run of zeros, and an optional trailing
    /// dotted-quad IPv4 part.
    public init?(parsing text: some StringProtocol) {
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if index == pieces.count - 1, piece.contains("."), let v4 = IPv4Address(parsing: piece) {
                    let b = v4.bytes
                    result += [UInt16(b[0]) << 8 | UInt16(b[1]), UInt16(b[2]) << 8 | UInt16(b[3])]
                } else {
                    guard (1...4).contains(piece.count), piece.allSatisfy(\.isHexDigit),
                        let value = UInt16(piece, radix: 16)
                    else { return nil }
                    result.append(value)
                }
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        let high = all[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        let low = all[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        self.init(high: high, low: low)
    }
}

extension StringProtocol {
    fileprivate func components(separatedBy separator: String) -> [Substring] {
        var result: [Substring] = []
        var rest = self[...]
        while let range = rest.firstRange(of: separator) {
            result.append(Substring(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        result.append(Substring(rest))
        return result
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
