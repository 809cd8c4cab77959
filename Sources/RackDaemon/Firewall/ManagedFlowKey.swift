// rackd — a flow's key in rackd's flow maps (RackdMaps.swift).

import RackEngine

/// A managed flow as its set element spells it: local address . local port . remote address . remote port.
struct ManagedFlowKey: Hashable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6, network order.
    var localAddress: [UInt8]
    var localPort: UInt16
    var remoteAddress: [UInt8]
    var remotePort: UInt16

    var isIPv6: Bool { localAddress.count == 16 }

    /// The element key: each port is big-endian and padded to a 4-byte register.
    var setKeyBytes: [UInt8] {
        func port(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xff), 0, 0] }
        return localAddress + port(localPort) + remoteAddress + port(remotePort)
    }

    var description: String {
        func text(_ bytes: [UInt8]) -> String {
            if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
            return "[" + stride(from: 0, to: bytes.count, by: 2)
                .map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                .joined(separator: ":") + "]"
        }
        return "\(text(localAddress)):\(localPort)-\(text(remoteAddress)):\(remotePort)"
    }
}

extension ManagedFlowKey {
    /// The set element of an engine flow.
    init(_ flow: FlowKey) {
        self.init(localAddress: flow.local.address.bytes, localPort: flow.local.port,
                  remoteAddress: flow.remote.address.bytes, remotePort: flow.remote.port)
    }
}
