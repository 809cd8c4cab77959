// rackd — the daemon's command line: `rackd [--config PATH]` runs it, `rackd --check-config` checks the
// configuration, `rackd cleanup` removes its rules.

import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import RackDaemon
import RackEngine
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

@main
struct RackdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rackd",
        abstract: "Keeps TCP connections alive across network failures.",
        discussion: "See rackd(8), rackd.conf(5) and rackctl(8).",
        version: RackEngineVersion.string,
        subcommands: [Run.self, Cleanup.self],
        defaultSubcommand: Run.self
    )
}

/// Options every subcommand shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func makeLogger() -> Logger {
        let level = logLevel
        let format = LineLogHandler.formatForStandardError(environment: ProcessInfo.processInfo.environment)
        LoggingSystem.bootstrap { _ in LineLogHandler(level: level, format: format) }
        return Logger(label: "rackd")
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

extension RackdCommand {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the daemon in the foreground (the default).")

        static let defaultConfigurationPath = "/etc/rackd/rackd.conf"

        @Option(name: .long, help: ArgumentHelp(
            "Configuration file (default: \(defaultConfigurationPath) if it exists, else the built-in defaults).",
            valueName: "path"))
        var config: String?

        @Option(name: .long, help: ArgumentHelp(
            "Serve rackctl here instead of at [control] socket (one rackd per network namespace needs one each).",
            valueName: "path"))
        var controlSocket: String?

        @Option(name: .long, help: ArgumentHelp(
            "Keep connections across restarts here instead of /run/rackd/state (one per network namespace).",
            valueName: "path"))
        var stateDirectory: String?

        @Flag(name: .long, help: "Check the configuration, print what is wrong (with the line) or OK, and exit.")
        var checkConfig = false

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let source = ConfigurationSource(explicitPath: config, defaultPath: Self.defaultConfigurationPath)
            var configuration: Configuration
            do {
                configuration = try source.load()
                if let controlSocket { configuration.controlSocketPath = controlSocket }
                if let stateDirectory { configuration.stateDirectory = stateDirectory }
            } catch {
                let line = Array("\(error)\n".utf8)
                _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
                throw ExitCode(1)
            }
            if checkConfig {
                print("\(source.name): OK")
                return
            }
            let logger = common.makeLogger()
            logger.notice("starting", metadata: [
                "rackd.version": "\(RackEngineVersion.string)", "rackd.mode": "\(configuration.mode.rawValue)",
                "rackd.config": "\(source.name)",
            ])
            let notifier = SystemdNotifier()
            let dataPlane: DataPlane
            let control: ControlServer
            do {
                dataPlane = try DataPlane(configuration: configuration, notifier: notifier, logger: logger)
                control = try ControlServer(
                    path: configuration.controlSocketPath, statusGroup: configuration.statusGroup?.id,
                    mailbox: dataPlane.controlMailbox, logger: logger)
            } catch {
                logger.critical("could not start", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            }
            logger.notice("ready", metadata: [
                "nft.queue-variant": "\(dataPlane.queueVariant?.rawValue ?? "none")", "control.socket": "\(control.path)",
            ])
            notifier.notify("READY=1\nSTATUS=ready; no connections managed yet")
            let group = ServiceGroup(configuration: .init(
                services: [DataPlaneService(dataPlane: dataPlane), ControlService(server: control)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
            try await group.run()
        }
    }

    /// Synchronous: run by ExecStopPost, it needs no concurrency runtime (whose worker threads ask for a
    /// priority the unit does not grant, and say so in the journal).
    struct Cleanup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove rackd's nftables table (inet rackd) and the connections it kept for its next start.",
            discussion: "Refuses while rackd runs. Succeeds when there is nothing to remove.")

        @Option(name: .long, help: ArgumentHelp("The state directory rackd was started with.", valueName: "path"))
        var stateDirectory = Configuration().stateDirectory

        @OptionGroup var common: CommonOptions

        func run() throws {
            let logger = common.makeLogger()
            do {
                // The lock: a running rackd keeps it, and its connections must not be pulled from under it.
                let state = try StateDirectory(path: stateDirectory, logger: logger)
                state.removeAllRecords()
                // The conntrack entries of shifted rocks connections stay (docs/kernel-seqadj.md, "How rackd uses
                // it"): the records say which connections there were, not their shifts, and without rackd's `ct`
                // rule an entry is used only if something else keeps conntrack active, when it is what keeps the
                // connection's numbers right. Otherwise it expires with its timeout.
                let removed = try NftablesInstaller(logger: logger).remove()
                print(removed ? "removed table inet rackd" : "no table inet rackd; nothing to do")
            } catch {
                logger.error("cleanup failed", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            }
        }
    }
}
