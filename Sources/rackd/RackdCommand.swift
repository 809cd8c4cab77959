// rackd — the daemon's command line: `rackd [--config PATH]` runs it, `rackd cleanup` removes its rules.

import ArgumentParser
import Foundation
import Logging
import RackEngine
import ServiceLifecycle

@main
struct RackdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rackd",
        abstract: "Keeps TCP connections alive across network failures.",
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
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "rackd")
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

extension RackdCommand {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the daemon in the foreground (the default).")

        @Option(name: .long, help: "Configuration file. Without it rackd runs with the built-in defaults.")
        var config: String?

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let configuration = try loadConfiguration()
            let logger = common.makeLogger()
            logger.notice("starting", metadata: [
                "rackd.version": "\(RackEngineVersion.string)", "rackd.mode": "\(configuration.mode.rawValue)",
                "rackd.config": "\(config ?? "(defaults)")",
            ])
            let dataPlane: DataPlane
            do {
                dataPlane = try DataPlane(configuration: configuration, logger: logger)
            } catch {
                logger.critical("could not start", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            }
            logger.notice("ready", metadata: ["nft.queue-variant": "\(dataPlane.queueVariant?.rawValue ?? "none")"])
            let group = ServiceGroup(configuration: .init(
                services: [DataPlaneService(dataPlane: dataPlane)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
            try await group.run()
        }

        private func loadConfiguration() throws -> Configuration {
            guard let config else { return Configuration() }
            let text: String
            do {
                text = try String(contentsOfFile: config, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read \(config): \(error.localizedDescription)")
            }
            do {
                return try ConfigurationParser.parse(text)
            } catch {
                throw ValidationError("\(config): \(error)")
            }
        }
    }

    struct Cleanup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove rackd's nftables table (inet rackd). Succeeds when it is already gone.")

        @OptionGroup var common: CommonOptions

        func run() async throws {
            let logger = common.makeLogger()
            do {
                let removed = try NftablesInstaller(logger: logger).remove()
                print(removed ? "removed table inet rackd" : "no table inet rackd; nothing to do")
            } catch {
                logger.error("cleanup failed", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            }
        }
    }
}
