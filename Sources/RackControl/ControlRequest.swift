// rackd — what rackctl asks rackd, over the control socket (docs/control.md).
//
// One request per connection: a single line of JSON, answered by a single line of JSON.

/// A request from rackctl.
public struct ControlRequest: Codable, Sendable, Equatable {
    public enum Command: String, Codable, Sendable {
        case status, suspend, resume
    }

    public var command: Command
    /// For suspend and resume: the connection, or nil together with `all`.
    public var id: UInt64?
    public var all: Bool?

    public init(command: Command, id: UInt64? = nil, all: Bool? = nil) {
        self.command = command
        self.id = id
        self.all = all
    }

    public static let status = ControlRequest(command: .status)
    public static func suspend(id: UInt64?) -> ControlRequest {
        ControlRequest(command: .suspend, id: id, all: id == nil ? true : nil)
    }
    public static func resume(id: UInt64?) -> ControlRequest {
        ControlRequest(command: .resume, id: id, all: id == nil ? true : nil)
    }

    /// Whether the request changes anything (and so needs root).
    public var changesState: Bool { command != .status }
}

/// rackd's answer to one request.
public struct ControlResponse: Codable, Sendable, Equatable {
    public var ok: Bool
    /// What went wrong and what to do, when `ok` is false.
    public var error: String?
    /// True when the request was refused because of who sent it (rackctl exits 77).
    public var denied: Bool?
    /// For status.
    public var status: StatusReport?
    /// For suspend and resume: the connections the request changed, and those it left alone with why.
    public var changed: [UInt64]?
    public var unchanged: [UnchangedConnection]?

    public init(ok: Bool, error: String? = nil, status: StatusReport? = nil, changed: [UInt64]? = nil,
                unchanged: [UnchangedConnection]? = nil) {
        self.ok = ok
        self.error = error
        self.status = status
        self.changed = changed
        self.unchanged = unchanged
    }

    public static func failure(_ message: String) -> ControlResponse { ControlResponse(ok: false, error: message) }

    public static func refusal(_ message: String) -> ControlResponse {
        var response = ControlResponse(ok: false, error: message)
        response.denied = true
        return response
    }
}

public struct UnchangedConnection: Codable, Sendable, Equatable {
    public var id: UInt64
    public var reason: String

    public init(id: UInt64, reason: String) {
        self.id = id
        self.reason = reason
    }
}
