# shellcheck shell=bash
# integration-tests/lib/kernel_harness.sh: the scratch package the kernel-adapter tests build. rackd is an
# executable target, which tests cannot import, so each adapter test copies the adapters (Sources/rackd/
# Kernel), SystemError and the few RackEngine types they use into DIR and adds its own main.swift.

# kernel_harness_scaffold DIR REPO: lay out the package in DIR (Package.swift and every source but main).
kernel_harness_scaffold() {
    local dir=$1 repo=$2 f system_checkout system_dependency
    mkdir -p "$dir/Sources/RackEngine" "$dir/Sources/harness"
    for f in Engine/SocketSnapshot.swift Wire/IPAddress.swift Wire/IPv4Address.swift Wire/IPv6Address.swift \
        Wire/ByteOrder.swift Flow/FlowKey.swift; do
        cp "$repo/Sources/RackEngine/$f" "$dir/Sources/RackEngine/"
    done
    cp -r "$repo/Sources/CLinuxNetlink" "$dir/Sources/"
    cp "$repo/Sources/rackd/System/SystemError.swift" "$repo"/Sources/rackd/Kernel/*.swift "$dir/Sources/harness/"
    # Reuse the main build's checkout of swift-system when there is one.
    system_checkout=$(find "$repo" -maxdepth 3 -path '*/checkouts/swift-system' -type d 2>/dev/null | head -n 1)
    if [[ -n $system_checkout ]]; then
        system_dependency=".package(path: \"$system_checkout\")"
    else
        system_dependency='.package(url: "https://github.com/apple/swift-system", from: "1.8.1")'
    fi
    cat >"$dir/Package.swift" <<PKG
// swift-tools-version:6.1
import PackageDescription
let package = Package(
    name: "harness",
    dependencies: [$system_dependency],
    targets: [
        .target(name: "RackEngine"),
        .systemLibrary(name: "CLinuxNetlink"),
        .executableTarget(name: "harness", dependencies: [
            "RackEngine", "CLinuxNetlink", .product(name: "SystemPackage", package: "swift-system"),
        ]),
    ]
)
PKG
}

# kernel_harness_build DIR ADAPTER: build the package in DIR (log in DIR.log), report whether ADAPTER
# (a file name in Sources/rackd/Kernel, without .swift) and the shared socket code build without warnings
# through the caller's pass/fail, and set H to the harness binary. Exits the test if the build fails.
kernel_harness_build() {
    local dir=$1 adapter=$2 log=$1.log
    (cd "$dir" && swift build --disable-automatic-resolution 2>&1 || swift build 2>&1) >"$log" ||
        { tail -n 40 "$log"; fail "harness builds"; exit 1; }
    if grep -E "Sources/harness/($adapter|KernelNetlinkSocket)\.swift:[0-9]+:[0-9]+: warning" "$log"; then
        fail "the adapter builds without warnings"
    else
        pass "the adapter builds without warnings"
    fi
    H=$(cd "$dir" && swift build --show-bin-path)/harness
}
