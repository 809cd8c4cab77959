// rackd — the one byte that settles rocks 2.4's "1of2" (docs/rocks.md, §5.2).
//
// After a suspension both ends connect to each other's reconnection address at once, so two connections
// may come up. The roles of the original connection decide which one lives: the server picks one and
// writes a single byte on it (rocks writes an uninitialized stack byte, so any value: 02 and f7 in the
// captures), then closes the other; the client writes nothing until that byte comes, takes the connection
// it came on and closes the other. A connection that ends before the byte is dropped, and the client goes
// on waiting. The challenge-response (RocksChallenge.swift) follows on the connection picked.

/// The 1of2 pick.
public enum RocksPick {
    public static let length = 1

    /// What the server writes on the connection it keeps.
    public static func segment(_ value: UInt8) -> [UInt8] { [value] }

    /// Whether this end writes the pick (the server) or waits for it (the client).
    public static func writes(_ role: ConnectionRole) -> Bool { role == .server }
}
