// rackd — sock_diag requests for single sockets (Decoding/InetDiagRequest.swift): the bytes of a request,
// laid out field by field as the kernel reads them (`nlmsghdr`, then `inet_diag_req_v2`), and the sorting
// of its answers, a socket recorded from the kernel or an error.

import RackDaemon
import RackEngine
import Testing

@Suite struct InetDiagRequestTests {
    static func bytes(_ flow: FlowKey, sequence: UInt32) -> [UInt8] {
        var bytes: [UInt8] = [0xa5]  // appended after what is there
        InetDiagRequest.append(flow: flow, sequence: sequence, to: &bytes)
        #expect(bytes.first == 0xa5)
        return Array(bytes.dropFirst())
    }

    static func little32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }

    /// The header both requests share: length 72, SOCK_DIAG_BY_FAMILY (20), NLM_F_REQUEST (1), the sequence, port 0.
    static func header(sequence: UInt32) -> [UInt8] {
        [72, 0, 0, 0, 20, 0, 1, 0] + little32(sequence) + [0, 0, 0, 0]
    }

    @Test func anIPv4SocketIsAskedForByItsTupleWithTCPInfo() throws {
        let flow = FlowKey(local: TCPEndpoint(address: .v4(IPv4Address(10, 1, 0, 2)), port: 40_000),
                           remote: TCPEndpoint(address: .v4(IPv4Address(10, 2, 0, 2)), port: 22))
        let expected: [UInt8] = Self.header(sequence: 0x0102_0304)
            + [2, 6, 2, 0]  // AF_INET, IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), pad
            + [0xff, 0xff, 0xff, 0xff]  // every state (the caller filters)
            + [0x9c, 0x40, 0x00, 0x16]  // sport 40000, dport 22, big-endian
            + [10, 1, 0, 2] + [UInt8](repeating: 0, count: 12)  // source
            + [10, 2, 0, 2] + [UInt8](repeating: 0, count: 12)  // destination
            + [0, 0, 0, 0]  // any interface
            + [UInt8](repeating: 0xff, count: 8)  // INET_DIAG_NOCOOKIE
        #expect(Self.bytes(flow, sequence: 0x0102_0304) == expected)
        #expect(expected.count == InetDiagRequest.size)
    }

    @Test func anIPv6SocketIsAskedForAsAFINET6() throws {
        let local = try #require(IPAddress(parsing: "fd00:1::2"))
        let remote = try #require(IPAddress(parsing: "fd00:2::2"))
        let flow = FlowKey(local: TCPEndpoint(address: local, port: 1), remote: TCPEndpoint(address: remote, port: 0xabcd))
        let expected: [UInt8] = Self.header(sequence: 7)
            + [10, 6, 2, 0] + [0xff, 0xff, 0xff, 0xff]
            + [0x00, 0x01, 0xab, 0xcd]
            + [0xfd, 0, 0, 1] + [UInt8](repeating: 0, count: 11) + [2]
            + [0xfd, 0, 0, 2] + [UInt8](repeating: 0, count: 11) + [2]
            + [0, 0, 0, 0] + [UInt8](repeating: 0xff, count: 8)
        #expect(Self.bytes(flow, sequence: 7) == expected)
    }

    @Test func aSocketAnswerCarriesItsRequestsSequenceAndTheSnapshot() throws {
        let message = try #require(InetDiagMessageTests.socketMessages("inet-diag-ipv4.bin").first {
            try InetDiagMessageTests.decode($0) != nil
        })
        var renumbered = message
        renumbered.replaceSubrange(8..<12, with: Self.little32(4242))
        let answer = try Fixture.withMessage(renumbered) { InetDiagAnswer($0) }
        guard case .socket(let sequence, let snapshot?) = answer else {
            Issue.record("expected a socket, got \(String(describing: answer))")
            return
        }
        #expect(sequence == 4242 && answer?.sequence == 4242)
        #expect(snapshot == (try InetDiagMessageTests.decode(message)))
    }

    @Test func anErrorAnswerCarriesTheErrnoAndAnAcknowledgmentIsNone() throws {
        // NLMSG_ERROR: length 36, type 2, flags 0x100 (NLM_F_CAPPED), sequence 9; error -ENOENT; the request's header.
        func error(_ code: Int32) -> [UInt8] {
            [36, 0, 0, 0, 2, 0, 0, 1] + Self.little32(9) + [0, 0, 0, 0] + Self.little32(UInt32(bitPattern: code))
                + Self.header(sequence: 9)
        }
        let missing = try Fixture.withMessage(error(-2)) { InetDiagAnswer($0) }
        guard case .error(9, 2) = missing else {
            Issue.record("expected ENOENT for request 9, got \(String(describing: missing))")
            return
        }
        #expect(try Fixture.withMessage(error(0)) { InetDiagAnswer($0) } == nil)
        // A message of another type answers nothing.
        let done: [UInt8] = [20, 0, 0, 0, 3, 0, 2, 0] + Self.little32(9) + [0, 0, 0, 0] + [0, 0, 0, 0]
        #expect(try Fixture.withMessage(done) { InetDiagAnswer($0) } == nil)
    }
}
