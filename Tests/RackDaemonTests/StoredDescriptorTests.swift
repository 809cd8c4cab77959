// rackd — what rackd does with the descriptors systemd's fd store hands back at start
// (System/StoredDescriptor.swift, used by Rocks/RocksSocketStore.swift): which it adopts, which it
// closes, and when the store must be corrected.

@testable import RackDaemon
import Testing

@Suite struct StoredDescriptorTests {
    static let rocks: Set<String> = ["rocks-heartbeat", "rocks-reconnection"]

    @Test func descriptorsAreSortedByTheNamesRackdStores() {
        let handed = [
            StoredDescriptor(descriptor: 3, name: "rocks-reconnection"),
            StoredDescriptor(descriptor: 4, name: "old-socket"),
            StoredDescriptor(descriptor: 5, name: "rocks-heartbeat"),
            StoredDescriptor(descriptor: 6, name: "old-socket"),
            StoredDescriptor(descriptor: 7, name: "rocks-heartbeat"),
            StoredDescriptor(descriptor: 8, name: "unknown"),
        ]
        let sorting = StoredDescriptorSorting(handed, wanted: Self.rocks)
        #expect(sorting.wanted == ["rocks-reconnection": [3], "rocks-heartbeat": [5, 7]])
        #expect(sorting.unwanted.map(\.descriptor) == [4, 6, 8])
        #expect(sorting.unwantedNames == ["old-socket", "unknown"], "each name removed once")
    }

    @Test func withRocksDisabledEveryStoredRocksSocketGoes() {
        let handed = [StoredDescriptor(descriptor: 3, name: "rocks-heartbeat"),
                      StoredDescriptor(descriptor: 4, name: "rocks-reconnection")]
        let sorting = StoredDescriptorSorting(handed, wanted: RocksSocketStore.names(rocksEnabled: false))
        #expect(sorting.wanted.isEmpty)
        #expect(sorting.unwantedNames == ["rocks-heartbeat", "rocks-reconnection"])
        #expect(RocksSocketStore.names(rocksEnabled: true) == Self.rocks)
    }

    @Test func nothingHandedOverMeansBindAndNothingToRemove() {
        #expect(StoredSocketChoice.choose(from: [], configured: 0) == .bind(close: [], removeName: false))
        #expect(StoredSocketChoice.choose(from: [], configured: 7000) == .bind(close: [], removeName: false))
        #expect(StoredDescriptorSorting([], wanted: Self.rocks) == StoredDescriptorSorting([], wanted: []))
    }

    @Test func anyPortConfiguredAdoptsTheStoredSocketWhateverItsPort() {
        #expect(StoredSocketChoice.choose(from: [(3, 41234)], configured: 0) == .adopt(3, close: [], storeAgain: false))
    }

    @Test func aConfiguredPortAdoptsOnlyASocketBoundToIt() {
        #expect(StoredSocketChoice.choose(from: [(3, 7000)], configured: 7000) == .adopt(3, close: [], storeAgain: false))
        // The configuration changed since the socket was stored: the old port goes, the new one is bound.
        #expect(StoredSocketChoice.choose(from: [(3, 7000)], configured: 7001) == .bind(close: [3], removeName: true))
    }

    @Test func aDescriptorOfTheWrongKindIsNeverAdopted() {
        // nil port: not an AF_INET socket of the expected type (sd_is_socket_inet said no).
        #expect(StoredSocketChoice.choose(from: [(3, nil)], configured: 0) == .bind(close: [3], removeName: true))
        // Port 0: never bound; nothing the peers know.
        #expect(StoredSocketChoice.choose(from: [(3, 0)], configured: 0) == .bind(close: [3], removeName: true))
    }

    @Test func ofSeveralUnderOneNameTheFirstThatFitsIsAdoptedAndTheStoreCorrected() {
        #expect(StoredSocketChoice.choose(from: [(3, nil), (4, 7000), (5, 7000)], configured: 7000)
                == .adopt(4, close: [3, 5], storeAgain: true))
        #expect(StoredSocketChoice.choose(from: [(3, 6000), (4, 7000)], configured: 0)
                == .adopt(3, close: [4], storeAgain: true))
    }

    @Test func namesSystemdWouldRefuseAreNotSent() {
        #expect(StoredDescriptor.isValidName("rocks-heartbeat"))
        #expect(!StoredDescriptor.isValidName(""))
        #expect(!StoredDescriptor.isValidName("a:b"), "':' separates LISTEN_FDNAMES")
        #expect(!StoredDescriptor.isValidName("a b"))
        #expect(!StoredDescriptor.isValidName(String(repeating: "x", count: 256)))
        #expect(StoredDescriptor.isValidName(String(repeating: "x", count: 255)))
    }
}
