// rackctl — asks the running rackd for its connections, and to suspend or resume them.
//
// Exit status (sysexits): 0 done; 1 rackd refused or failed the request; 64 usage; 69 rackd is not
// running; 77 permission denied.

import ArgumentParser
// FoundationEssentials (JSON, no ICU) keeps rackctl small: the full Foundation links ICU's data (~40 MB).
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RackControl
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

@main
struct RackctlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rackctl",
        abstract: "Show and steer the connections rackd keeps alive.",
        discussion: """
            rackctl talks to rackd over its control socket. 'status' needs root, or membership of the \
            group named by status-group in /etc/rackd/rackd.conf; 'suspend' and 'resume' need root.
            """,
        version: RackEngineVersion.string,
        subcommands: [Status.self, Suspend.self, Resume.self]
    )
}

/// Options every subcommand shares.
struct SocketOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "rackd's control socket (default: $RACKD_SOCKET, else /run/rackd/rackd.sock).", valueName: "path"))
    var socket: String?

    var path: String {
        socket ?? ProcessInfo.processInfo.environment["RACKD_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "/run/rackd/rackd.sock"
    }

    /// Sends one request; failures become a message on stderr and the matching exit status.
    func send(_ request: ControlRequest) throws -> ControlResponse {
        let response: ControlResponse
        do {
            response = try ControlClient(path: path).send(request)
        } catch {
            printError(error.description)
            throw ExitCode(error.exitStatus)
        }
        guard response.ok else {
            let message = response.error ?? "the request failed"
            printError("rackd: \(message)")
            throw ExitCode(response.denied == true ? 77 : 1)
        }
        return response
    }
}

/// Which connections suspend and resume act on.
struct ConnectionSelection: ParsableArguments {
    @Argument(help: ArgumentHelp("A connection id, as 'rackctl status' shows it.", valueName: "id"))
    var id: UInt64?

    @Flag(name: .long, help: "Every managed connection.")
    var all = false

    func validate() throws {
        if all == (id != nil) { throw ValidationError("name one connection id, or --all") }
    }
}

extension RackctlCommand {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the managed connections and rackd's counters.")

        @Flag(name: .long, help: "Print JSON (format documented in docs/control.md) instead of a table.")
        var json = false

        @OptionGroup var options: SocketOptions

        func run() throws {
            guard let report = try options.send(.status).status else {
                printError("rackctl: rackd sent no status")
                throw ExitCode(1)
            }
            if json {
                print(try ControlCoding.prettyJSON(report))
            } else {
                print(StatusTable.render(report), terminator: "")
            }
        }
    }

    struct Suspend: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hold connections as an outage would, until 'rackctl resume'.",
            discussion: "The local sockets see a zero window; the peers see an outage. Run before the machine sleeps.")

        @OptionGroup var selection: ConnectionSelection
        @OptionGroup var options: SocketOptions

        func run() throws {
            report(try options.send(.suspend(id: selection.id)), verb: "suspended")
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resume suspended connections now.",
            discussion: "rackd challenges each peer at once; a connection is healthy again as soon as its peer answers.")

        @OptionGroup var selection: ConnectionSelection
        @OptionGroup var options: SocketOptions

        func run() throws {
            report(try options.send(.resume(id: selection.id)), verb: "resuming")
        }
    }
}

/// "suspended 2 connections: 3, 5", then why any others were left alone.
private func report(_ response: ControlResponse, verb: String) {
    let changed = response.changed ?? []
    let noun = changed.count == 1 ? "connection" : "connections"
    let list = changed.isEmpty ? "" : ": " + changed.map(String.init).joined(separator: ", ")
    print("\(verb) \(changed.count) \(noun)\(list)")
    for left in response.unchanged ?? [] {
        print("  \(left.id): \(left.reason)")
    }
}

func printError(_ message: String) {
    let bytes = Array((message + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
