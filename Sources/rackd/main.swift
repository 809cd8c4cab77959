import Logging
import RackEngine

// Temporary probe: install, list, remove.
LoggingSystem.bootstrap(StreamLogHandler.standardError)
let logger = Logger(label: "rackd")
let args = CommandLine.arguments
let installer = try NftablesInstaller(logger: logger)
if args.count > 1 && args[1] == "cleanup" {
    print("removed:", try installer.remove())
} else {
    let pref = Configuration.RulesVariant(rawValue: args.count > 1 ? args[1] : "auto")!
    let v = try installer.install(queueNumber: 3939, firewallMark: 0x1000_0000, preference: pref)
    print("installed", v)
    try installer.addManagedFlow(ManagedFlowKey(localAddress: [10,1,0,2], localPort: 1234, remoteAddress: [10,2,0,2], remotePort: 5001))
    try installer.addManagedFlow(ManagedFlowKey(localAddress: [0xfd,0,0,1] + Array(repeating: 0, count: 11) + [2], localPort: 1234, remoteAddress: [0xfd,0,0,2] + Array(repeating: 0, count: 11) + [2], remotePort: 5001))
}
