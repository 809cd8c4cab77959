// rackd — what the kernel-messages fuzz target (Fuzz/fuzz-kernel-messages) and its replay test do with one
// input: every decoder of Decoding/ over every message of the datagram. Returning is success; a trap is a
// bug.

import RackEngine

/// The body of the kernel-messages fuzz target.
public enum KernelMessagesFuzzBody {
    public static func run(_ datagram: UnsafeRawBufferPointer) {
        var table = InterfaceTable()
        var watch = RulesetWatch(table: "rackd", ownPortIDs: [1])
        var messages = NetlinkMessages(datagram)
        while let message = messages.next() {
            _ = message.errorCode
            var attributes = NetlinkAttributes(message.payload, after: 0)
            while let attribute = attributes.next() { _ = attribute.bigEndianInteger(as: UInt32.self) }
            _ = SocketSnapshot(decoding: message)
            _ = InetDiagAnswer(message)?.sequence
            _ = QueuedPacketMetadata(decoding: message)
            _ = table.apply(message)
            _ = RouteMessage.decode(message.payload)?.mayLeadToPeers
            _ = NftablesNotification(decoding: message)
            _ = watch.handle(message)?.description
        }
        _ = watch.takeUnfinished()
        _ = table.usableAddresses
    }
}
