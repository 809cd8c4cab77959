// rackd — a packet the kernel holds in NFQUEUE until rackd gives its verdict.

/// A queued packet and what the kernel told us about it. `bytes` points into the reader's receive
/// buffer and is valid only while the packet is being handled.
struct QueuedPacket {
    /// What the kernel told us, decoded from the packet's message (Decoding/QueuedPacketMetadata.swift).
    var metadata: QueuedPacketMetadata
    /// The IP packet (no link-layer header), writable so that a rewrite can edit it in place.
    var bytes: UnsafeMutableRawBufferPointer

    var id: UInt32 { metadata.id }

    /// Only part of the packet was copied: it can be judged but never sent back changed.
    var isTruncated: Bool { metadata.originalLength > bytes.count }
}
