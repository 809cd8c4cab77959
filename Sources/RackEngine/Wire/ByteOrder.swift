// rackd — big-endian loads and stores over raw buffers.
//
// Every multi-byte field on the wire is in network byte order (big-endian) and may sit at any
// alignment (IP options and TCP options shift everything after them). All views read and write
// through these two helpers so the byte-order and alignment rules live in one place.

extension UnsafeRawBufferPointer {
    /// Reads the big-endian integer of type `T` that starts `offset` bytes into the buffer.
    ///
    /// The read may be unaligned. The caller guarantees `offset + MemoryLayout<T>.size <= count`
    /// (the views' `init(validating:)` is where that is established).
    @inline(__always)
    func loadBigEndian<T: FixedWidthInteger>(fromByteOffset offset: Int, as type: T.Type) -> T {
        T(bigEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension UnsafeMutableRawBufferPointer {
    /// Reads the big-endian integer of type `T` that starts `offset` bytes into the buffer.
    @inline(__always)
    func loadBigEndian<T: FixedWidthInteger>(fromByteOffset offset: Int, as type: T.Type) -> T {
        T(bigEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// Writes `value` in big-endian order at `offset` bytes into the buffer; the write may be unaligned.
    @inline(__always)
    func storeBigEndian<T: FixedWidthInteger>(_ value: T, toByteOffset offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
    }
}
