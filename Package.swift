// swift-tools-version:6.1
//
// rackd: reliable TCP connections across network failures (racks, Zandy & Miller 2002) for Linux.
//
// The layout is the architecture (docs/architecture.md, "Layout"):
//   RackEngine          pure: wire views, per-connection state machines, protocol codecs, policy. No syscalls.
//   CNFQ                system module for libnetfilter_queue (mnl API).
//   CNftables           system module for libnftnl + libmnl.
//   CConntrack          system module for libnetfilter_conntrack + libmnl (ctnetlink: kernel shifts).
//   CLinuxNetlink       the kernel's netlink, rtnetlink and sock_diag headers.
//   CSystemd            system module for libsystemd: sd_notify and the fd store, the journal, sd-bus to logind.
//   RackControl         the rackctl <-> rackd messages, shared by both binaries.
//   RackDaemon          the daemon as a library: the adapters that do I/O (queue, rules, injector, sockets,
//                       links), the data-plane loop and the control server, and, in Decoding/, the pure
//                       decoders of what the kernel sends (netlink, inet_diag, rtnetlink, NFQUEUE).
//   rackd               the daemon's executable: its command line, nothing else.
//   rackd-kernel-probe  runs the kernel adapters alone, for the integration tests.
//   rackctl             the command-line client.
import PackageDescription

let package = Package(
    name: "rackd",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "rackd", targets: ["rackd"]),
        .executable(name: "rackctl", targets: ["rackctl"]),
        .library(name: "RackEngine", targets: ["RackEngine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        .target(
            name: "RackEngine",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        .systemLibrary(
            name: "CNFQ",
            pkgConfig: "libnetfilter_queue",
            providers: [.apt(["libnetfilter-queue-dev", "libmnl-dev"])]
        ),
        .systemLibrary(
            name: "CNftables",
            pkgConfig: "libnftnl",
            providers: [.apt(["libnftnl-dev", "libmnl-dev"])]
        ),
        .systemLibrary(
            name: "CConntrack",
            pkgConfig: "libnetfilter_conntrack",
            providers: [.apt(["libnetfilter-conntrack-dev", "libmnl-dev"])]
        ),
        .systemLibrary(name: "CLinuxNetlink"),
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        .target(name: "RackControl"),
        .target(
            name: "RackDaemon",
            dependencies: [
                "RackEngine", "RackControl", "CNFQ", "CNftables", "CConntrack", "CLinuxNetlink", "CSystemd",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "rackd",
            dependencies: [
                "RackDaemon", "RackEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "rackd-kernel-probe",
            dependencies: ["RackDaemon", "RackEngine", .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "rackctl",
            dependencies: [
                "RackControl", "RackEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Fuzzing (issue: every parser that reads bytes from the network). Fuzz/run builds these with
        // libFuzzer (-sanitize=fuzzer -D FUZZING); a plain build makes them replay files instead.
        .target(name: "RackFuzzing", dependencies: ["RackEngine", "RackControl"], path: "Fuzz/RackFuzzing"),
        .executableTarget(name: "fuzz-wire", dependencies: ["RackFuzzing"], path: "Fuzz/fuzz-wire"),
        .executableTarget(name: "fuzz-options", dependencies: ["RackFuzzing"], path: "Fuzz/fuzz-options"),
        .executableTarget(name: "fuzz-racks-messages", dependencies: ["RackFuzzing"], path: "Fuzz/fuzz-racks-messages"),
        .executableTarget(name: "fuzz-engine", dependencies: ["RackFuzzing"], path: "Fuzz/fuzz-engine"),
        .executableTarget(name: "fuzz-rocks-messages", dependencies: ["RackFuzzing"], path: "Fuzz/fuzz-rocks-messages"),
        .executableTarget(name: "fuzz-control-requests", dependencies: ["RackFuzzing"], path: "Fuzz/fuzz-control-requests"),
        .executableTarget(
            name: "fuzz-kernel-messages", dependencies: ["RackFuzzing", "RackDaemon"], path: "Fuzz/fuzz-kernel-messages"),
        // bench/engine-cost: what one input costs the engine with 10 and with 10,000 connections.
        .executableTarget(name: "engine-cost", dependencies: ["RackEngine"], path: "bench/EngineCost"),
        .testTarget(name: "RackControlTests", dependencies: ["RackControl"]),
        .testTarget(
            name: "RackDaemonTests",
            dependencies: ["RackDaemon", "RackEngine", "CNFQ", "CConntrack"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "RackEngineTests",
            dependencies: ["RackEngine", "RackFuzzing"],
            resources: [.copy("Fixtures")]
        ),
    ]
)
