// rackd — what the kernel says about a packet it queued: one NFQUEUE packet message (NFQNL_MSG_PACKET)
// decoded from its bytes. Pure: bytes in, values out.
//
// The message's payload is a 4-byte `nfgenmsg` followed by NFQA_* attributes, big-endian, numbered as in
// linux/netfilter/nfnetlink_queue.h. As libnetfilter_queue's nfq_nlmsg_parse does, a message whose packet
// header or 32-bit attributes have the wrong length is refused whole; so is one whose attributes do not
// fill it exactly. Attributes rackd does not read are skipped, and the last of two of one type counts.

import RackEngine

/// The metadata of one queued packet, and where its bytes are in the message.
public struct QueuedPacketMetadata: Equatable, Sendable {
    /// What the kernel said about the packet's checksum and segmentation (NFQA_SKB_INFO).
    public struct SKBInfo: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// NFQA_SKB_CSUMNOTREADY: the TCP checksum field holds only the pseudo-header sum (CHECKSUM_PARTIAL
        /// on output).
        public static let checksumNotReady = SKBInfo(rawValue: 1 << 0)
        /// NFQA_SKB_GSO: a GSO super-packet, larger than the MTU, segmented after the verdict.
        public static let gso = SKBInfo(rawValue: 1 << 1)
        /// NFQA_SKB_CSUM_NOTVERIFIED: the checksum of an incoming packet was not verified by the device.
        public static let checksumNotVerified = SKBInfo(rawValue: 1 << 2)
    }

    /// The netfilter hook the packet was queued from.
    public enum Hook: Equatable, Sendable {
        case localIn, localOut, other(UInt8)

        /// NF_INET_LOCAL_IN is 1, NF_INET_LOCAL_OUT 3 (linux/netfilter.h).
        public init(_ number: UInt8) {
            switch number {
            case 1: self = .localIn
            case 3: self = .localOut
            default: self = .other(number)
            }
        }

        /// The direction of a packet queued from this hook; nil for a hook rackd's rules never use.
        public var direction: PacketDirection? {
            switch self {
            case .localOut: .outbound
            case .localIn: .inbound
            case .other: nil
            }
        }
    }

    /// The id the verdict must carry.
    public var id: UInt32
    public var hook: Hook
    /// The packet's mark (NFQA_MARK); 0 when the kernel sent none.
    public var mark: UInt32
    public var skbInfo: SKBInfo
    /// The interface indexes the packet came in on and goes out on, where there is one.
    public var inputInterface: UInt32?
    public var outputInterface: UInt32?
    /// The packet's length in the kernel: NFQA_CAP_LEN when the copy was cut short, else the copy's length.
    public var originalLength: Int
    /// The IP packet (NFQA_PAYLOAD) within the message's payload; empty when there is none.
    public var payload: Range<Int>

    /// Decodes one NFQNL_MSG_PACKET message. Nil for another message type, and for one without a packet
    /// header (the only case where no verdict can be given) or with a malformed or cut attribute.
    public init?(decoding message: NetlinkMessage) {
        guard message.type == Self.packetMessageType else { return nil }
        var id: UInt32?
        var hook = Hook.other(0)
        var mark: UInt32 = 0
        var skbInfo = SKBInfo()
        var inputInterface: UInt32?
        var outputInterface: UInt32?
        var capturedLength: UInt32?
        var payload = 0..<0
        var attributes = NetlinkAttributes(message.payload, after: Self.nfgenmsgSize)
        while let attribute = attributes.next() {
            let bytes = attribute.payload
            switch attribute.type {
            case Attribute.packetHeader:
                // struct nfqnl_msg_packet_hdr, packed: be32 packet_id, be16 hw_protocol, u8 hook.
                guard bytes.count == 7 else { return nil }
                id = UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self))
                hook = Hook(bytes[6])
            case Attribute.payload:
                payload = attribute.payloadOffset..<(attribute.payloadOffset + bytes.count)
            case Attribute.mark, Attribute.skbInfo, Attribute.inputInterface, Attribute.outputInterface,
                Attribute.capturedLength:
                guard let value = attribute.bigEndianInteger(as: UInt32.self) else { return nil }
                switch attribute.type {
                case Attribute.mark: mark = value
                case Attribute.skbInfo: skbInfo = SKBInfo(rawValue: value)
                case Attribute.inputInterface: inputInterface = value
                case Attribute.outputInterface: outputInterface = value
                case Attribute.capturedLength: capturedLength = value
                default: break
                }
            default:
                continue
            }
        }
        guard let id, !attributes.isMalformed else { return nil }
        self.id = id
        self.hook = hook
        self.mark = mark
        self.skbInfo = skbInfo
        self.inputInterface = inputInterface
        self.outputInterface = outputInterface
        self.originalLength = capturedLength.map(Int.init) ?? payload.count
        self.payload = payload
    }

    /// NFNL_SUBSYS_QUEUE (3) in the high byte, NFQNL_MSG_PACKET (0) in the low one.
    static let packetMessageType: UInt16 = 3 << 8
    /// struct nfgenmsg: family, version, resource id.
    static let nfgenmsgSize = 4

    /// The NFQA_* attribute numbers rackd reads (enum nfqnl_attr_type).
    enum Attribute {
        static let packetHeader: UInt16 = 1  // NFQA_PACKET_HDR
        static let mark: UInt16 = 3  // NFQA_MARK
        static let inputInterface: UInt16 = 5  // NFQA_IFINDEX_INDEV
        static let outputInterface: UInt16 = 6  // NFQA_IFINDEX_OUTDEV
        static let payload: UInt16 = 10  // NFQA_PAYLOAD
        static let capturedLength: UInt16 = 13  // NFQA_CAP_LEN
        static let skbInfo: UInt16 = 14  // NFQA_SKB_INFO
    }
}
