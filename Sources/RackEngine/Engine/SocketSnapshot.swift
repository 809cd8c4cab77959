// rackd — what the kernel says about a local TCP socket (read over sock_diag), as the engine sees it.
//
// rackd keeps healthy connections out of the queue (docs/architecture.md, "Data path"), so it learns their state from the
// kernel instead: the socket's byte counters give its exact send and receive sequence numbers (with the
// ISNs seen in the handshake), and `lastAckReceived` tells whether the peer is alive.

/// One local TCP socket at one moment.
public struct SocketSnapshot: Sendable, Equatable, Codable {
    /// TCP states, numbered as the kernel numbers them (include/net/tcp_states.h).
    public enum State: UInt8, Sendable, Codable {
        case established = 1, synSent, synReceived, finWait1, finWait2, timeWait, close, closeWait, lastAck,
            listen, closing, newSynReceived
    }

    public var flow: FlowKey
    public var state: State
    /// tcpi_bytes_acked. For the active opener it counts the SYN too (measured: 3001 after 3000 bytes).
    public var bytesAcked: UInt64
    /// tcpi_bytes_received: data bytes received in order, never the SYN.
    public var bytesReceived: UInt64
    /// tcpi_unacked: segments sent and not yet acknowledged.
    public var unackedSegments: UInt32
    /// Time since the socket last processed an ACK (tcpi_last_ack_recv), duplicates included.
    public var lastAckReceived: Duration
    /// Time since the socket last received data (tcpi_last_data_recv).
    public var lastDataReceived: Duration
    /// The socket's owner and inode, for status.
    public var uid: UInt32
    public var inode: UInt64
    /// Bytes the application wrote that the peer has not acknowledged (idiag_wqueue): what the socket
    /// holds for the peer while the connection is suspended. Status only.
    public var sendQueueBytes: UInt32
    /// Bytes received that the application has not read yet (idiag_rqueue). Status only.
    public var receiveQueueBytes: UInt32

    public init(flow: FlowKey, state: State, bytesAcked: UInt64, bytesReceived: UInt64, unackedSegments: UInt32,
                lastAckReceived: Duration, lastDataReceived: Duration, uid: UInt32 = 0, inode: UInt64 = 0,
                sendQueueBytes: UInt32 = 0, receiveQueueBytes: UInt32 = 0) {
        self.flow = flow
        self.state = state
        self.bytesAcked = bytesAcked
        self.bytesReceived = bytesReceived
        self.unackedSegments = unackedSegments
        self.lastAckReceived = lastAckReceived
        self.lastDataReceived = lastDataReceived
        self.uid = uid
        self.inode = inode
        self.sendQueueBytes = sendQueueBytes
        self.receiveQueueBytes = receiveQueueBytes
    }
}

/// A change in the host's addresses or links, from rtnetlink.
public enum LinkEvent: Sendable, Equatable {
    /// These local addresses can no longer carry traffic (removed, or their link went down).
    case addressesLost([IPAddress])
    /// These local addresses can carry traffic again (added, or their link came up).
    case addressesAvailable([IPAddress])
    /// Unicast routes of these families were added or replaced (RTM_NEWROUTE): a peer that had no route
    /// may have one now. The addresses are unchanged.
    case routesAdded([IPFamily])
}

/// The family of an address or a route.
public enum IPFamily: Sendable, Hashable, CustomStringConvertible {
    case ipv4
    case ipv6

    public var description: String {
        switch self {
        case .ipv4: "ipv4"
        case .ipv6: "ipv6"
        }
    }
}

extension IPAddress {
    /// The address's family.
    public var family: IPFamily { isIPv4 ? .ipv4 : .ipv6 }
}
