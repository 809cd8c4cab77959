// rackd — finding rocks peers (docs/rocks.md §2, §14). Work in progress.

extension ConnectionCore {
    mutating func handleProbeResult(_ request: RocksProbeRequest, outcome: RocksProbeOutcome, now: EngineInstant)
        -> EngineOutput
    {
        EngineOutput()
    }

    mutating func handleDatagram(_ payload: UnsafeRawBufferPointer, from source: TCPEndpoint, now: EngineInstant)
        -> EngineOutput
    {
        EngineOutput()
    }
}
