// rackd — a value kept out of line: a large field that a connection rarely has, or rarely changes, costs
// the connection one pointer instead of its size (docs/architecture.md, "Liveness at scale").
//
// The table keeps 10,000 connections in one array, each as large as its largest state could be; what is
// out of line is paid for only by the connections that hold it. The box is immutable, so the value keeps
// value semantics: setting it makes a new box, and copies of the owner share the old one.

/// One value on the heap, read as if it were inline.
struct OutOfLine<Value> {
    /// Immutable: sendable whenever its value is (`OutOfLine: Sendable` below).
    private final class Box: @unchecked Sendable {
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    private let box: Box

    init(_ value: Value) { box = Box(value) }

    var value: Value { box.value }
}

extension OutOfLine: Sendable where Value: Sendable {}
