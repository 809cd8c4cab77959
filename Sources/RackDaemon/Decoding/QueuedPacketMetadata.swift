// rackd — what the kernel says about a packet it queued: one NFQUEUE packet message (NFQNL_MSG_PACKET)
// decoded from its bytes. Pure: bytes in, values out.
//
// The message's payload is a 4-byte `nfgenmsg` followed by NFQA_* attributes, big-endian, numbered as in
// linux/netfilter/nfnetlink_queue.h. As libnetfilter_queue's nfq_nlmsg_parse does, a message whose packet
// header or 32-bit attributes have the wrong length is refused whole; so is one whose attributes do not
// fill it exactly. Attributes rackd does not read are skipped, and the last of two of one type counts.
// The packet's conntrack entry (NFQA_CT, sent when the queue asks with NFQA_CFG_F_CONNTRACK) is nested
// ctnetlink attributes, held to the same rules: of them rackd reads only the status (CTA_STATUS), and a
// nested walk that does not fill NFQA_CT exactly, or a status of the wrong length, refuses the message.

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
    /// The status bits of the packet's conntrack entry (CTA_STATUS inside NFQA_CT); nil when the kernel sent
    /// none: the queue was not asked for it, or the packet has no entry.
    public var conntrackStatus: UInt32?

    /// Whether the packet's conntrack entry carries a sequence adjustment (IPS_SEQ_ADJUST): the kernel
    /// shifts the packet after its verdict (Core/KernelShift.swift).
    public var kernelShifts: Bool { (conntrackStatus ?? 0) & Self.sequenceAdjustStatus != 0 }

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
        var conntrackStatus: UInt32?
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
            case Attribute.conntrack:
                guard let status = Self.conntrackStatus(in: bytes) else { return nil }
                conntrackStatus = status
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
        self.conntrackStatus = conntrackStatus
    }

    /// The status in NFQA_CT's nested attributes: `.some(nil)` when it holds none, nil when they are
    /// malformed.
    private static func conntrackStatus(in bytes: UnsafeRawBufferPointer) -> UInt32?? {
        var status: UInt32?
        var nested = NetlinkAttributes(bytes, after: 0)
        while let attribute = nested.next() {
            guard attribute.type == ConntrackAttribute.status else { continue }
            guard let value = attribute.bigEndianInteger(as: UInt32.self) else { return nil }
            status = value
        }
        return nested.isMalformed ? nil : .some(status)
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
        static let conntrack: UInt16 = 11  // NFQA_CT, nested CTA_* attributes
        static let capturedLength: UInt16 = 13  // NFQA_CAP_LEN
        static let skbInfo: UInt16 = 14  // NFQA_SKB_INFO
    }

    /// The CTA_* attribute numbers rackd reads inside NFQA_CT (enum ctattr_type).
    enum ConntrackAttribute {
        static let status: UInt16 = 3  // CTA_STATUS, be32
    }

    /// IPS_SEQ_ADJUST (enum ip_conntrack_status): the entry carries a sequence adjustment.
    public static let sequenceAdjustStatus: UInt32 = 1 << 6
}
