// rackd — the data-plane loop: carries packets and timer ticks to the engine and its outputs back to
// the kernel.
//
// One thread owns the queue, the rules, the injector and the engine, so nothing here needs a lock. The
// loop polls the queue and a wake-up pipe, with the engine's next deadline as the timeout. It decides
// nothing: `HostEngine` does.
//
// Order matters (docs/architecture.md, "Data path" and "Kernel facts": queueing and rules):
// - start: bind the rocks sockets when rocks is enabled (their ports go into the configuration the engine
//   announces to rocks peers), so that a port already taken stops rackd before any rule exists; under
//   systemd, adopt the ones the last rackd kept in the fd store instead (Rocks/RocksSocketStore.swift);
//   then bind the queue (and, when rocks is enabled and ctnetlink answers, the next queue, for the packets
//   conntrack shifts: kernel shifts, Core/KernelShift.swift), then install the rules, so no packet is
//   queued before someone listens;
// - each input: verdicts, then the verdicts of packets held earlier that the input released, then one
//   nftables batch of the rule changes the input caused, then the packets the engine asked to inject,
//   then its UDP datagrams, then the rocks probes it asked for. A drain of the queue is one input.
//   Injected packets may depend on the rules (a managed flow must be queued before the peer answers),
//   and must not overtake the packets that caused them. One exception: destinations a packet showed to
//   be ordinary go into the kernel's ordinary sets before that packet's verdict (their next SYN may
//   follow it at once);
// - stop: hold no more and close the probes; delete the queue rules but not the chains, give every
//   packet queued its verdict and let the held ones through, then delete the table (deleting it first
//   would make the kernel drop whatever is queued), then unbind.

import Logging
import RackControl
import RackEngine
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

public final class DataPlane: Sendable {
    /// The only state shared across threads: set by `requestStop` from any thread.
    private let stopRequested = Atomic<Bool>(false)
    private let wakePipe: (read: CInt, write: CInt)
    /// Requests from rackctl, answered by this loop between packets.
    public let controlMailbox: ControlMailbox
    /// Everything else belongs to the data-plane thread.
    private nonisolated(unsafe) let state: State

    private final class State {
        var engine: HostEngine
        let reader: NFQueueReader
        /// The queue of packets conntrack shifts after their verdict (queue number + 1), when rackd can shift
        /// in the kernel (Core/KernelShift.swift); its packets reach the engine with `kernelShifts`.
        let shiftReader: NFQueueReader?
        let installer: NftablesInstaller
        let injector: RawInjector
        let diagnostics: SocketDiagnostics
        let linkMonitor: LinkMonitor
        let loopbackAddresses: LoopbackAddresses
        let logger: Logger
        let notifier: SystemdNotifier
        let statusBuilder: StatusReportBuilder
        let prober: RocksProber
        /// The rocks sockets, when rocks is enabled (`RocksSettings.isEnabled`).
        let heartbeatSocket: RocksHeartbeatSocket?
        let reconnectionSocket: RocksReconnectionSocket?
        /// Where the connections are kept across restarts (docs/restarts.md).
        let stateDirectory: StateDirectory
        var rejectionLog = RejectionLogLimiter()
        var tally = EventTally()
        var pendingRuleChanges: [RuleChange] = []
        /// Destinations the engine found ordinary, for the kernel's ordinary sets.
        var pendingOrdinary: [OrdinaryDestination] = []
        var pendingTransmits: [[UInt8]] = []
        var pendingReleases: [HeldPacketRelease] = []
        var pendingDatagrams: [Datagram] = []
        /// Heartbeats the kernel refused (no route, address gone), for the engine: a rock suspends on them.
        var failedHeartbeats: [HeartbeatFailure] = []
        var pendingProbes: [RocksProbeRequest] = []
        /// Follows nf_tables' notifications, to put rackd's table back when someone takes it away.
        var rulesetMonitor: RulesetMonitor?
        /// logind's PrepareForSleep and rackd's sleep inhibitor; nil without logind (docs/systemd.md, "Sleep").
        var sleepMonitor: LogindSleepMonitor?
        /// Shutting down: no probe starts any more.
        var stopping = false
        var nextWatchdogAt: EngineInstant?
        /// Set when connections came, went or changed state: systemd's STATUS line is due for an update.
        var statusChanged = true
        var lastStatusAt: EngineInstant?

        init(engine: HostEngine, reader: NFQueueReader, shiftReader: NFQueueReader?, installer: NftablesInstaller, injector: RawInjector,
             diagnostics: SocketDiagnostics, linkMonitor: LinkMonitor, loopbackAddresses: LoopbackAddresses,
             notifier: SystemdNotifier, statusBuilder: StatusReportBuilder, prober: RocksProber,
             heartbeatSocket: RocksHeartbeatSocket?, reconnectionSocket: RocksReconnectionSocket?,
             stateDirectory: StateDirectory, logger: Logger) {
            self.engine = engine
            self.stateDirectory = stateDirectory
            self.reader = reader
            self.shiftReader = shiftReader
            self.installer = installer
            self.injector = injector
            self.diagnostics = diagnostics
            self.linkMonitor = linkMonitor
            self.loopbackAddresses = loopbackAddresses
            self.notifier = notifier
            self.statusBuilder = statusBuilder
            self.prober = prober
            self.heartbeatSocket = heartbeatSocket
            self.reconnectionSocket = reconnectionSocket
            self.logger = logger
        }
    }

    /// Binds the rocks sockets (when rocks is enabled) and the queue, and installs the rules. When this
    /// returns, rackd is ready.
    public init(configuration: Configuration, notifier: SystemdNotifier, logger: Logger) throws {
        var configuration = configuration
        // First the lock: a second rackd stops here, before it touches anything of the first.
        let stateDirectory = try StateDirectory(path: configuration.stateDirectory, logger: logger)
        let daemonRecord = stateDirectory.loadDaemonRecord()
        var heartbeatSocket: RocksHeartbeatSocket?
        var reconnectionSocket: RocksReconnectionSocket?
        // What systemd kept for this unit's last rackd; what rackd no longer stores goes.
        let stored = StoredDescriptorSorting(notifier.takeStoredDescriptors(),
                                             wanted: RocksSocketStore.names(rocksEnabled: configuration.rocks.isEnabled))
        RocksSocketStore.discardUnwanted(stored, notifier: notifier, logger: logger)
        if configuration.rocks.isEnabled {
            // Port 0 asks for any free port: the engine must announce the one the kernel gave. After a
            // restart, the ports announced before: the rocks peers keep using them. Under systemd the very
            // sockets come back from the fd store; else the remembered ports are bound again.
            let heartbeat = try Self.rocksSocket(
                RocksHeartbeatSocket.self, configured: configuration.rocks.heartbeatPort,
                kept: daemonRecord?.rocksHeartbeatPort, stored: stored, notifier: notifier, logger: logger)
            let reconnection = try Self.rocksSocket(
                RocksReconnectionSocket.self, configured: configuration.rocks.reconnectionPort,
                kept: daemonRecord?.rocksReconnectionPort, stored: stored, notifier: notifier, logger: logger)
            configuration.rocks.heartbeatPort = heartbeat.port
            configuration.rocks.reconnectionPort = reconnection.port
            heartbeatSocket = heartbeat
            reconnectionSocket = reconnection
            logger.notice("rocks sockets bound", metadata: [
                "rocks.heartbeat-port": "\(heartbeat.port)", "rocks.reconnection-port": "\(reconnection.port)",
            ])
        }
        // Kernel shifts (Core/KernelShift.swift) need ctnetlink for the entries and the next queue for the
        // packets conntrack shifts; the engine reads whether they are there from its configuration.
        var conntrack: ConntrackShifts?
        var shiftsUnavailable: String?
        if configuration.rocks.isEnabled && !configuration.rocks.conntrack {
            shiftsUnavailable = "[rocks] conntrack = no"
        } else if configuration.rocks.isEnabled {
            do {
                let shifts = try ConntrackShifts()
                try shifts.checkAvailable()
                conntrack = shifts
            } catch {
                shiftsUnavailable = "\(error)"
            }
        }
        let reader = try NFQueueReader(queueNumber: configuration.queueNumber, maxLength: configuration.queueMaxLength,
                                       receiveBufferBytes: 64 << 20, logger: logger)
        logger.notice("queue bound", metadata: ["nfq.queue": "\(configuration.queueNumber)"])
        var shiftReader: NFQueueReader?
        if conntrack != nil {
            // The rules send a packet whose conntrack entry carries the shift to the next queue, so that the
            // engine knows what the kernel does to it after its verdict (RackdRuleset+Rules.swift).
            do {
                guard let number = RackdRuleset.shiftQueueNumber(after: configuration.queueNumber) else {
                    throw SystemError(call: "NFQUEUE \(configuration.queueNumber) + 1", errno: .invalidArgument,
                                      hint: "[daemon] queue is the last queue number; kernel shifts need the next one too")
                }
                let bound = try NFQueueReader(queueNumber: number, maxLength: configuration.queueMaxLength,
                                              receiveBufferBytes: 16 << 20, logger: logger)
                bound.stopHolding()  // the engine holds SYNs of new connections only, never a shifted flow's
                shiftReader = bound
                logger.notice("queue bound", metadata: ["nfq.queue": "\(number)", "nfq.purpose": "kernel shifts"])
            } catch {
                conntrack = nil
                shiftsUnavailable = "\(error)"
            }
        }
        configuration.kernelShiftsAvailable = conntrack != nil
        if configuration.rocks.isEnabled {
            if let shiftsUnavailable {
                logger.notice("rocks connections with a sequence shift stay queued: \(shiftsUnavailable)")
            } else {
                logger.notice("rocks connections with a sequence shift leave the queue: conntrack carries it")
            }
        }
        let injector = try RawInjector(firewallMark: configuration.firewallMark)
        let diagnostics = try SocketDiagnostics()
        let linkMonitor = try LinkMonitor()
        let loopbackAddresses = try LoopbackAddresses()
        let startedAt = MonotonicClock.now()
        var engine = HostEngine(configuration: configuration, random: SystemRandomNumberGenerator())
        // The addresses there are now; from here on the link monitor reports changes.
        _ = engine.handleLinkEvent(.addressesAvailable(linkMonitor.addresses), now: startedAt)
        // The connections an earlier rackd kept, with the flows they need queued: the rules go in with them.
        let records = stateDirectory.loadConnections()
        var restored = engine.restore(records, now: startedAt)
        if !records.isEmpty {
            logger.notice("connections taken back from the last rackd", metadata: [
                "state.connections": "\(engine.connections.count)", "state.records": "\(records.count)",
                "state.directory": "\(stateDirectory.path)", "nft.queued-flows": "\(engine.kernelFlows.queued.count)", "nft.kernel-rewrites": "\(engine.kernelFlows.rewrites.count)", "nft.screened-flows": "\(engine.kernelFlows.screened.count)", "nft.shifted-flows": "\(engine.kernelFlows.shifted.count)",
            ])
        }
        let installer = try NftablesInstaller(logger: logger, conntrack: conntrack)
        Self.deleteStaleShifts(engine.staleKernelShifts, with: conntrack, logger: logger)
        // Before the install, so no deletion after it goes unseen; rackd's own batches are told apart by port.
        let rulesetMonitor = try RulesetMonitor(ownPortID: installer.portID, logger: logger)
        // The ordinary destinations the last rackd cached, with the time each has left, go into the new table.
        let ordinary = configuration.mode == .racks
            ? engine.restoreOrdinaryDestinations(installer.cachedOrdinary(), now: startedAt) : []
        if !ordinary.isEmpty {
            logger.notice("ordinary destinations taken back from the last rackd", metadata: ["nft.elements": "\(ordinary.count)"])
        }
        // One batch replaces whatever table the last rackd left with one that already holds the restored
        // flows: at no instant is a kept flow's packet left unqueued.
        try installer.install(queueNumber: configuration.queueNumber, firewallMark: configuration.firewallMark,
                              preference: configuration.rules, flows: engine.kernelFlows,
                              exclusions: configuration.mode == .racks ? configuration.policy : Policy(),
                              rocksPorts: configuration.mode == .racks ? configuration.rocks.portsTakingPlainSYNs : nil,
                              ordinary: ordinary)
        restored.ruleChanges = []
        try stateDirectory.save(DaemonRecord(rocksHeartbeatPort: heartbeatSocket?.port,
                                             rocksReconnectionPort: reconnectionSocket?.port))
        var fds: [CInt] = [0, 0]
        guard pipe(&fds) == 0 else { throw SystemError.current("pipe(wake-up)") }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        wakePipe = (fds[0], fds[1])
        let wakeDescriptor = fds[1]
        controlMailbox = ControlMailbox(wake: {
            var byte: UInt8 = 1
            _ = write(wakeDescriptor, &byte, 1)
        })
        let statusBuilder = StatusReportBuilder(
            configuration: configuration, rulesVariant: installer.installedVariant?.rawValue ?? "none",
            startedAt: startedAt)
        state = State(engine: engine, reader: reader, shiftReader: shiftReader, installer: installer, injector: injector,
                      diagnostics: diagnostics, linkMonitor: linkMonitor, loopbackAddresses: loopbackAddresses,
                      notifier: notifier, statusBuilder: statusBuilder,
                      prober: RocksProber(firewallMark: configuration.firewallMark, logger: logger),
                      heartbeatSocket: heartbeatSocket, reconnectionSocket: reconnectionSocket,
                      stateDirectory: stateDirectory, logger: logger)
        state.rulesetMonitor = rulesetMonitor
        state.sleepMonitor = LogindSleepMonitor.open(logger: logger)
        carryOut(restored)
        finishInput()
    }

    /// A rocks socket: the one systemd kept in its fd store, else one bound to the configured port; with 0
    /// configured, to the port kept in the state directory from the last run if it is still free (rocks
    /// peers send there), else to any free port.
    private static func rocksSocket<Socket: StorableRocksSocket>(
        _ kind: Socket.Type, configured: UInt16, kept: UInt16?, stored: StoredDescriptorSorting,
        notifier: SystemdNotifier, logger: Logger
    ) throws -> Socket {
        try RocksSocketStore.adoptOrBind(kind, handed: stored.wanted[Socket.storeName] ?? [], configured: configured,
                                         notifier: notifier, logger: logger) {
            guard configured == 0, let kept, kept != 0 else { return try Socket(port: configured) }
            do {
                return try Socket(port: kept)
            } catch {
                logger.warning("the rocks port of the last run is taken; rocks connections kept from it will not hear us there",
                               metadata: ["fdstore.name": "\(Socket.storeName)", "rocks.port": "\(kept)", "error": "\(error)"])
                return try Socket(port: 0)
            }
        }
    }

    deinit {
        close(wakePipe.read)
        close(wakePipe.write)
    }

    /// The queue variant the rules use.
    public var queueVariant: QueueRuleVariant? { state.installer.installedVariant }

    /// The configuration the engine runs with: the file's, with the rocks ports the kernel picked for 0.
    public var configuration: Configuration { state.engine.configuration }

    /// Asks the loop to stop; safe from any thread.
    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
        var byte: UInt8 = 1
        _ = write(wakePipe.write, &byte, 1)
    }

    /// Runs the loop on the calling thread until `requestStop`, then shuts down in order.
    func run() throws {
        defer { shutDown() }
        while !stopRequested.load(ordering: .acquiring) {
            // The heartbeat socket's slot polls nothing (fd -1) when rocks is off; the probes come last.
            var fds = [
                pollfd(fd: state.reader.descriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: state.shiftReader?.descriptor ?? -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0),
                pollfd(fd: state.linkMonitor.descriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: state.heartbeatSocket?.descriptor ?? -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: state.rulesetMonitor?.descriptor ?? -1, events: Int16(POLLIN), revents: 0),
                state.sleepMonitor?.pollDescriptor ?? pollfd(fd: -1, events: 0, revents: 0),
            ]
            let probesStart = fds.count
            fds += state.prober.pollDescriptors
            let ready = poll(&fds, nfds_t(fds.count), pollTimeoutMilliseconds())
            if ready < 0 && errno != EINTR { throw SystemError.current("poll(data plane)") }
            if fds[3].revents != 0 { handleLinkEvents() }
            if fds[0].revents != 0 || fds[1].revents != 0 { try drainQueue() }
            if fds[2].revents != 0 { drainWakePipe() }
            if fds[4].revents != 0 { receiveDatagrams() }
            if fds[5].revents != 0 { readRulesetNotifications() }
            serviceSleepMonitor(revents: fds[6].revents)
            restoreRulesIfDue()
            serviceProbes(fds[probesStart...])
            controlMailbox.answerAll(answer)
            runTimers()
            takeSnapshotsIfDue()
            persistIfDue()
            tellSystemd()
        }
    }

    // MARK: State that outlives the process (docs/restarts.md)

    /// Writes the records the engine says are due: at once after a change a crash must not lose, else
    /// at its checkpoint.
    private func persistIfDue(all: Bool = false) {
        let now = MonotonicClock.now()
        guard all || state.engine.persistenceDue(now: now) else { return }
        let changes = state.engine.takePersistenceChanges(now: now, all: all)
        for record in changes.save {
            do {
                try state.stateDirectory.save(record)
            } catch {
                state.logger.error("could not keep a connection's state; a restart of rackd now would lose it",
                                   metadata: ["conn.id": "\(record.id)", "error": "\(error)"])
            }
        }
        for id in changes.remove { state.stateDirectory.removeConnection(id) }
    }

    // MARK: Packets

    private func drainQueue() throws {
        // Bounded, so timers still run under a packet flood.
        for _ in 0..<64 {
            let now = MonotonicClock.now()
            var handled = try state.reader.drainOnce { packet in handle(&packet, now: now) }
            if let shiftReader = state.shiftReader {
                handled += try shiftReader.drainOnce { packet in handle(&packet, kernelShifts: true, now: now) }
            }
            finishInput()
            if handled == 0 { return }
        }
    }

    /// `kernelShifts`: the packet came from the shift queue, so conntrack shifts it after its verdict.
    private func handle(_ packet: inout QueuedPacket, kernelShifts: Bool = false, now: EngineInstant) -> PacketVerdict {
        let checksum: TCPChecksumState = packet.metadata.skbInfo.contains(.checksumNotReady) ? .partial : .complete
        let output = state.engine.handlePacket(
            packet.bytes, direction: packet.metadata.hook.direction, checksum: checksum,
            truncated: packet.isTruncated, kernelShifts: kernelShifts, now: now)
        carryOut(output)
        // Before the verdict: the SYN-ACK that made the destination ordinary lets the application connect
        // again at once, and that connection's SYN must find the element.
        if !output.ordinary.isEmpty { commitOrdinary() }
        // Before the verdict too: a peer's SYN whose flow is now queued draws the SYN-ACK that must find it.
        if output.ruleChangesBeforeVerdict { commitAdditionsEarly(output.ruleChanges) }
        return output.verdict
    }

    // MARK: Timers

    private func pollTimeoutMilliseconds() -> CInt {
        let now = MonotonicClock.now()
        let candidates = [state.engine.nextDeadline, state.nextWatchdogAt, state.prober.nextDeadline,
                          state.rulesetMonitor?.nextDeadline, state.sleepMonitor?.nextDeadline(now: now)].compactMap { $0 }
        guard let deadline = candidates.min() else { return 1000 }
        if deadline <= now { return 0 }
        return CInt(min(1000, (deadline.nanoseconds - now.nanoseconds + 999_999) / 1_000_000))
    }

    private func runTimers() {
        guard let deadline = state.engine.nextDeadline else { return }
        let now = MonotonicClock.now()
        guard deadline <= now else { return }
        carryOut(state.engine.handleTimeout(now: now))
        finishInput()
    }

    // MARK: Sockets and links

    /// Reads the sockets the engine says are due (sock_diag) when it asks. If the read fails the engine
    /// hears nothing, rather than "every socket is gone".
    private func takeSnapshotsIfDue() {
        let now = MonotonicClock.now()
        guard let due = state.engine.nextSnapshotAt, due <= now else { return }
        let flows = state.engine.flowsDueForSnapshot(now: now)
        do {
            let snapshots = try state.diagnostics.snapshot(of: flows)
            carryOut(state.engine.handleSnapshots(snapshots, of: flows, now: MonotonicClock.now()))
        } catch {
            state.logger.warning("could not read socket state", metadata: ["error": "\(error)"])
            carryOut(state.engine.handleSnapshotFailure(now: MonotonicClock.now()))
        }
        finishInput()
    }

    private func handleLinkEvents() {
        do {
            for event in try state.linkMonitor.drainEvents() {
                // Routes come and go in bursts (a routing daemon, a VPN): a debug line, not an info one.
                if case .routesAdded = event {
                    state.logger.debug("link event", metadata: ["link.event": "\(event)"])
                } else {
                    state.logger.info("link event", metadata: ["link.event": "\(event)"])
                }
                carryOut(state.engine.handleLinkEvent(event, now: MonotonicClock.now()))
            }
        } catch {
            state.logger.warning("could not read link events", metadata: ["error": "\(error)"])
        }
        finishInput()
    }

    // MARK: Rules taken away

    private func readRulesetNotifications() {
        do {
            try state.rulesetMonitor?.drain(now: MonotonicClock.now())
        } catch {
            state.logger.warning("could not read nftables notifications", metadata: ["error": "\(error)"])
        }
    }

    /// Puts rackd's table back, with the engine's managed flows, when someone else took part of it away
    /// (or, after lost notifications, when the kernel says it is not intact), as often as the monitor's rate
    /// limit allows (docs/rules-restore.md).
    private func restoreRulesIfDue() {
        guard let monitor = state.rulesetMonitor, let restoration = monitor.takeDue(now: MonotonicClock.now()) else {
            return
        }
        let flows = state.engine.kernelFlows
        do {
            if case .notificationsLost = restoration.trigger, try state.installer.isIntact(flows: flows) {
                state.logger.info("nftables notifications were lost; rackd's table is intact",
                                  metadata: ["nft.table": "inet rackd"])
                return
            }
            try state.installer.reinstall(flows: flows,
                                          ordinary: state.engine.ordinaryDestinations(now: MonotonicClock.now()))
            state.logger.notice("rules restored", metadata: [
                "nft.table": "inet rackd", "rules.reason": "\(restoration.trigger)", "nft.elements": "\(flows.count)",
                "rules.restore-ms": "\(restoration.millisecondsSinceNoticed(now: MonotonicClock.now()))",
            ])
        } catch {
            state.logger.error("could not restore the rules", metadata: [
                "rules.reason": "\(restoration.trigger)", "error": "\(error)",
            ])
            monitor.retry(restoration)
        }
    }

    // MARK: rocks: probes and heartbeats

    /// Advances the running probes (`polled` holds their poll results) and hands every finished one to
    /// the engine, each as an input of its own.
    private func serviceProbes(_ polled: ArraySlice<pollfd>) {
        for completion in state.prober.service(polled, now: MonotonicClock.now()) {
            carryOut(state.engine.handleProbeResult(completion.request, outcome: completion.outcome,
                                                    now: MonotonicClock.now()))
            finishInput()
        }
    }

    /// Hands the datagrams waiting at the heartbeat socket to the engine; one batch is one input.
    private func receiveDatagrams() {
        guard let socket = state.heartbeatSocket else { return }
        do {
            let now = MonotonicClock.now()
            _ = try socket.receive { payload, source in
                carryOut(state.engine.handleDatagram(payload, from: source, now: now))
            }
        } catch {
            state.logger.warning("could not read the rocks heartbeat socket", metadata: ["error": "\(error)"])
        }
        finishInput()
    }

    // MARK: Carrying out engine outputs

    /// Carries out what needs no order with the packet's verdict (addresses on lo, logs, counters) and
    /// keeps rule changes and transmits for `finishInput`.
    private func carryOut(_ output: EngineOutput) {
        state.pendingRuleChanges += output.ruleChanges
        state.pendingOrdinary += output.ordinary
        for change in output.addressChanges {
            do {
                switch change {
                case .hold(let address):
                    try state.loopbackAddresses.hold(address)
                    state.logger.notice("keeping a departed address on lo for the connections that use it",
                                        metadata: ["address": "\(address)"])
                case .release(let address):
                    try state.loopbackAddresses.release(address)
                    state.logger.notice("address no longer needed on lo; removed", metadata: ["address": "\(address)"])
                }
            } catch {
                state.logger.error("could not change the addresses on lo", metadata: ["address.change": "\(change)", "error": "\(error)"])
            }
        }
        let now = MonotonicClock.now()
        for event in output.events {
            state.tally.count(event)
            switch event {
            case .connectionManaged, .connectionEnded, .phaseChanged, .resumed: state.statusChanged = true
            default: break
            }
            switch state.rejectionLog.admit(event, now: now) {
            case .log(let suppressedBefore):
                if suppressedBefore > 0 {
                    state.logger.warning("more resumption attempts were rejected than are logged",
                                         metadata: ["suppressed": "\(suppressedBefore)"])
                }
                state.logger.log(event) { state.engine.connection(id: $0) }
            case .suppress:
                break
            }
        }
        state.pendingTransmits += output.transmits
        state.pendingReleases += output.releases
        state.pendingDatagrams += output.datagrams
        state.pendingProbes += output.probes
    }

    /// Ends an input whose verdicts, if any, were sent: gives the packets it released their verdicts,
    /// commits its rule changes in one batch, injects its packets, sends its datagrams and starts its
    /// probes.
    private func finishInput() {
        sendReleases()
        commitRuleChanges()
        commitOrdinary()
        flushTransmits()
        flushDatagrams()
        startProbes()
        guard !state.failedHeartbeats.isEmpty else { return }
        // A refused heartbeat is an input of its own (it may suspend a connection, which sends none again).
        let failed = state.failedHeartbeats
        state.failedHeartbeats = []
        carryOut(state.engine.handleHeartbeatFailures(failed, now: MonotonicClock.now()))
        finishInput()
    }

    /// Verdicts on packets held earlier, right after the verdicts of the input that released them.
    private func sendReleases() {
        guard !state.pendingReleases.isEmpty else { return }
        do {
            try state.reader.release(state.pendingReleases)
        } catch {
            state.logger.error("could not give held packets their verdicts", metadata: ["error": "\(error)"])
        }
        state.pendingReleases.removeAll(keepingCapacity: true)
    }

    /// Sends the heartbeats the engine asked for. A failure is expected while a link is down: worth a debug
    /// line, and the engine hears of it (a rock suspends on a heartbeat error, docs/rocks.md §5.1), except
    /// a full socket buffer, which says nothing about the path.
    private func flushDatagrams() {
        guard !state.pendingDatagrams.isEmpty else { return }
        for datagram in state.pendingDatagrams {
            do {
                guard let socket = state.heartbeatSocket else {
                    throw SystemError(call: "sendto(rocks heartbeat socket)", errno: .badFileDescriptor,
                                      hint: "the engine sent a heartbeat with rocks disabled (a bug in rackd)")
                }
                try socket.send(datagram)
            } catch {
                state.logger.debug("heartbeat not sent", metadata: ["rocks.destination": "\(datagram.destination)", "error": "\(error)"])
                if let error = error as? SystemError, error.errno != .wouldBlock {
                    state.failedHeartbeats.append(HeartbeatFailure(destination: datagram.destination, reason: "\(error.errno)"))
                }
            }
        }
        state.pendingDatagrams.removeAll(keepingCapacity: true)
    }

    /// Starts the probes the engine asked for, after the input's rule changes.
    private func startProbes() {
        guard !state.pendingProbes.isEmpty else { return }
        guard !state.stopping else {
            state.pendingProbes.removeAll()
            return
        }
        let now = MonotonicClock.now()
        for request in state.pendingProbes { state.prober.start(request, now: now) }
        state.pendingProbes.removeAll(keepingCapacity: true)
    }

    /// Puts `changes`' additions in the kernel now, ahead of the batch's verdicts. They stay pending too: the
    /// batch's changes are committed in their order once its verdicts are given (an earlier packet's
    /// removal of the same flow must not come last), and adding an element again changes nothing. Removals
    /// wait for that: a flow must not leave the queue before its held packets get their verdicts.
    private func commitAdditionsEarly(_ changes: [RuleChange]) {
        let additions = changes.filter { !$0.isRemoval }
        guard !additions.isEmpty else { return }
        for (change, error) in state.installer.apply(additions) {
            state.logger.error("could not carry out a rule change (map elements or a conntrack entry)", metadata: ["rule.change": "\(change)", "error": "\(error)"])
        }
    }

    private func commitRuleChanges() {
        guard !state.pendingRuleChanges.isEmpty else { return }
        for (change, error) in state.installer.apply(state.pendingRuleChanges) {
            state.logger.error("could not carry out a rule change (map elements or a conntrack entry)", metadata: ["rule.change": "\(change)", "error": "\(error)"])
        }
        state.pendingRuleChanges.removeAll(keepingCapacity: true)
    }

    /// Adds the destinations the engine found ordinary to the kernel's sets. A failure (a full set) costs
    /// only queued handshakes: the engine finds the destination ordinary again on its next connection.
    private func commitOrdinary() {
        guard !state.pendingOrdinary.isEmpty else { return }
        do {
            try state.installer.addOrdinary(state.pendingOrdinary)
        } catch {
            state.logger.warning("could not cache ordinary destinations in the kernel; their handshakes stay queued",
                                 metadata: ["nft.elements": "\(state.pendingOrdinary.count)", "error": "\(error)"])
        }
        state.pendingOrdinary.removeAll(keepingCapacity: true)
    }

    /// Injects what the engine asked for, after the verdicts of the packets that caused it.
    private func flushTransmits() {
        guard !state.pendingTransmits.isEmpty else { return }
        for packet in state.pendingTransmits {
            do {
                try state.injector.send(packet)
            } catch {
                // Expected while a link is down (ENETUNREACH): the engine retries on its own schedule.
                state.logger.debug("injection failed", metadata: ["error": "\(error)"])
            }
        }
        state.pendingTransmits.removeAll(keepingCapacity: true)
    }

    /// Gives every packet queued now its verdict, and carries out what follows.
    private func drainForShutdown() {
        do {
            while try state.reader.drainOnce({ packet in handle(&packet, now: MonotonicClock.now()) })
                + (state.shiftReader?.drainOnce({ packet in handle(&packet, kernelShifts: true, now: MonotonicClock.now()) }) ?? 0) > 0 {}
        } catch {
            state.logger.warning("could not drain the queue", metadata: ["error": "\(error)"])
        }
        finishInput()
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakePipe.read, &buffer, buffer.count) > 0 {}
    }

    // MARK: rackctl

    /// Answers one control request; runs on this thread, which owns the engine.
    private func answer(_ request: ControlRequest) -> ControlResponse {
        let now = MonotonicClock.now()
        switch request.command {
        case .status:
            let report = state.statusBuilder.report(
                connections: state.engine.connections, queue: queueCounters, tally: state.tally,
                ordinaryDestinations: state.engine.ordinaryDestinationCount, now: now,
                wallNow: Self.wallClock())
            return ControlResponse(ok: true, status: report)
        case .suspend, .resume:
            let target: OperatorTarget
            if let id = request.id {
                target = .connection(id: id)
            } else if request.all == true {
                target = .all
            } else {
                return .failure("name a connection id, or all")
            }
            do {
                let outcome = request.command == .suspend
                    ? try state.engine.suspendByOperator(target, now: now)
                    : try state.engine.resumeByOperator(target, now: now)
                carryOut(outcome.output)
                finishInput()
                return ControlResponse(
                    ok: true, changed: outcome.changed,
                    unchanged: outcome.unchanged.map { UnchangedConnection(id: $0.id, reason: $0.reason) })
            } catch {
                return .failure(error.description)
            }
        }
    }

    private static func wallClock() -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return now
    }

    // MARK: systemd

    /// WATCHDOG=1 from this loop, so a wedged loop is restarted; STATUS= when the connections changed
    /// (at most once a second).
    private func tellSystemd() {
        guard state.notifier.isActive else { return }
        let now = MonotonicClock.now()
        if let interval = state.notifier.watchdogInterval, (state.nextWatchdogAt ?? now) <= now {
            state.notifier.notify("WATCHDOG=1")
            state.nextWatchdogAt = now + interval
        }
        if state.statusChanged, state.lastStatusAt.map({ now.duration(since: $0) >= .seconds(1) }) ?? true {
            let connections = state.engine.connections
            let suspended = connections.filter { $0.phase == .suspended || $0.phase == .resuming }.count
            state.notifier.notify("STATUS=\(connections.count) connections managed, \(suspended) suspended")
            state.statusChanged = false
            state.lastStatusAt = now
        }
    }

    // MARK: Sleep (logind)

    /// Lets sd-bus work, and acts on what logind said: before sleep every connection is held as `rackctl
    /// suspend --all` would hold it, and only then does the inhibitor go, so logind sleeps once they are
    /// held; after waking they resume as `rackctl resume --all` would, and a new inhibitor is taken.
    private func serviceSleepMonitor(revents: Int16) {
        guard let monitor = state.sleepMonitor else { return }
        for event in monitor.process(revents: revents, now: MonotonicClock.now()) {
            let now = MonotonicClock.now()
            do {
                let outcome = event == .sleeping
                    ? try state.engine.suspendByOperator(.all, now: now)
                    : try state.engine.resumeByOperator(.all, now: now)
                carryOut(outcome.output)
                finishInput()
                state.logger.notice(event == .sleeping ? "the machine is going to sleep: connections held"
                                                       : "the machine woke up: connections resuming",
                                    metadata: ["conn.changed": "\(outcome.changed.count)",
                                               "conn.unchanged": "\(outcome.unchanged.count)"])
            } catch {
                state.logger.error("could not act on logind's sleep signal", metadata: ["error": "\(error)"])
            }
            if event == .sleeping { monitor.releaseInhibitor() } else { monitor.takeInhibitor() }
        }
        if monitor.isClosed { state.sleepMonitor = nil }
    }

    /// Deletes the conntrack entries of connections taken back that this rackd does not shift
    /// (`HostEngine.staleKernelShifts`), with its adapter, or one opened for that alone when kernel shifts are
    /// off now (`[rocks] conntrack = no` since the last start). A failure is logged: the entries then expire.
    private static func deleteStaleShifts(_ stale: [KernelShift], with conntrack: ConntrackShifts?, logger: Logger) {
        guard !stale.isEmpty else { return }
        do {
            let adapter = try conntrack ?? ConntrackShifts()
            for shift in stale { try adapter.remove(shift) }
            logger.notice("deleted the conntrack entries of connections taken back unshifted",
                          metadata: ["conntrack.entries": "\(stale.count)"])
        } catch {
            logger.warning("could not delete the conntrack entries of connections taken back unshifted",
                           metadata: ["conntrack.entries": "\(stale.count)", "error": "\(error)"])
        }
    }

    /// Both queues' counters together: status and logs count packets, not queues.
    private var queueCounters: NFQueueReader.Counters {
        state.shiftReader.map { state.reader.counters.adding($0.counters) } ?? state.reader.counters
    }

    // MARK: Shutdown

    private func shutDown() {
        state.notifier.notify("STOPPING=1")
        state.stopping = true
        state.prober.cancelAll()
        state.reader.stopHolding()
        if state.engine.connections.isEmpty {
            shutDownClean()
        } else {
            shutDownKeeping()
        }
        state.reader.unbind()
        state.shiftReader?.unbind()
        let counters = queueCounters
        state.logger.notice("stopped", metadata: [
            "nfq.received": "\(counters.received)", "nfq.accepted": "\(counters.accepted)",
            "nfq.modified": "\(counters.modified)", "nfq.dropped": "\(counters.dropped)", "nfq.held": "\(counters.held)",
        ])
    }

    /// Nothing is managed: nothing to keep. Deleting the table unregisters its hooks, and the kernel then
    /// drops every packet still queued (docs/architecture.md, "Kernel facts: NFQUEUE reader"). So: stop
    /// queueing while the chains stay, give what is queued its verdict and let the held packets through,
    /// and only then delete the table.
    private func shutDownClean() {
        do {
            try state.installer.stopQueueing()
        } catch {
            state.logger.error("could not delete the queue rules before the table", metadata: ["error": "\(error)"])
        }
        drainForShutdown()
        do {
            try state.reader.acceptAllHeld()
        } catch {
            state.logger.error("could not accept the packets still held", metadata: ["error": "\(error)"])
        }
        do {
            try state.installer.remove()
            state.logger.notice("rules removed", metadata: ["nft.table": "inet rackd"])
        } catch {
            state.logger.error("could not remove the rules; run 'rackd cleanup'", metadata: ["error": "\(error)"])
        }
        // Nothing should be left (a failed stopQueueing aside), but every packet still needs its verdict.
        drainForShutdown()
        do {
            try state.loopbackAddresses.releaseAll()
        } catch {
            state.logger.error("could not remove rackd's addresses from lo", metadata: ["error": "\(error)"])
        }
        state.stateDirectory.removeAllRecords()
    }

    /// Connections are managed: the next rackd takes them back (docs/restarts.md). Their records are
    /// written whole, and the table stays: its SYN rules pass new connections untouched while no rackd
    /// listens (`bypass`), its managed flows wait (no `bypass`: a moved flow's packets must not reach a
    /// kernel unmapped). Addresses kept on `lo` stay for the same sockets. What is queued now gets its
    /// verdict; what the kernel queues after this is dropped with the queue and sent again by its sender.
    private func shutDownKeeping() {
        drainForShutdown()
        do {
            try state.reader.acceptAllHeld()
        } catch {
            state.logger.error("could not accept the packets still held", metadata: ["error": "\(error)"])
        }
        persistIfDue(all: true)
        state.logger.notice("connections kept for the next rackd; the table inet rackd stays (rackd cleanup removes both)",
                            metadata: [
                                "state.connections": "\(state.engine.connections.count)",
                                "state.directory": "\(state.stateDirectory.path)",
                                "nft.queued-flows": "\(state.engine.kernelFlows.queued.count)", "nft.kernel-rewrites": "\(state.engine.kernelFlows.rewrites.count)", "nft.screened-flows": "\(state.engine.kernelFlows.screened.count)",
                                "nft.shifted-flows": "\(state.engine.kernelFlows.shifted.count)",
                            ])
    }
}
