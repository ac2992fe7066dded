// swift-tools-version:6.0
// machine: a container engine in a tiny libvirt/QEMU VM, reached from the host's docker CLI.
// Module arrows point one way: C system libraries <- Virt, SSH, HostOS <- MachineCore <- HostAgent <- machine.
import PackageDescription

let package = Package(
    name: "machine",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "machine", targets: ["machine"]),
        .executable(name: "machine-fuzz", targets: ["MachineFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C APIs, imported only by their Swift wrappers.
        .systemLibrary(name: "CLibvirt", providers: [.apt(["libvirt-dev"])]),
        .systemLibrary(name: "CLibSSH2", pkgConfig: "libssh2", providers: [.apt(["libssh2-1-dev"])]),
        // Swift wrappers: one class per C handle, typed errors, no raw pointers leave them.
        .target(name: "Virt", dependencies: ["CLibvirt"]),
        .target(name: "SSH", dependencies: ["CLibSSH2"]),
        // The host's own system calls: atomic files, child processes, local sockets, terminal
        // and signals. Errors carry the operation and errno, never a hint for users.
        .target(name: "HostOS"),
        // Machines: their store (Store/), the VM (VM/), the guest (Guest/), and the verbs that
        // tie them together (Lifecycle/). Hints for users are added here.
        .target(name: "MachineCore", dependencies: ["Virt", "SSH", "HostOS"]),
        // The host agent: one SSH session, the engine socket and port forwards. Run by
        // `machine agent`; MachineCore only starts and stops its process.
        .target(name: "HostAgent", dependencies: ["MachineCore", "SSH", "HostOS"]),
        // The command-line executable: one file per command.
        .executableTarget(name: "machine", dependencies: [
            "MachineCore", "HostAgent", "HostOS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], exclude: ["agent.order"], linkerSettings: [
            // lld packs the binary's 42,000 relative relocations (1 MB of .rela.dyn, read at each
            // start and resident from then on in every machine process, the agent's too) into
            // 10 KB of DT_RELR (glibc 2.36 and later); gold, swiftc's default here, cannot.
            .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"], .when(platforms: [.linux])),
            // The functions the agent runs, first and together (scripts/agent-order.py writes the
            // list): the kernel maps a binary's code in whole page-cache folios, so the agent's
            // 1 MB of code spread over 10.5 MB kept 9 MiB of the binary resident; together, 6.9.
            .unsafeFlags(["-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Sources/machine/agent.order",
                          "-Xlinker", "--no-warn-symbol-ordering"], .when(platforms: [.linux], configuration: .release)),
        ]),
        // Fuzz targets for the parsers of what the guest sends (scripts/fuzz.sh).
        .executableTarget(name: "MachineFuzz", dependencies: ["MachineCore", "HostAgent", "HostOS"]),
        .testTarget(name: "VirtTests", dependencies: ["Virt"]),
        // A real local OpenSSH sshd, for the tests of the libssh2 wrapper.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "SSHTests", dependencies: ["SSH", "HostOS", "TestSupport"]),
        .testTarget(name: "HostOSTests", dependencies: ["HostOS"]),
        .testTarget(name: "HostAgentTests", dependencies: ["HostAgent", "MachineCore", "SSH", "HostOS", "TestSupport"]),
        .testTarget(name: "MachineCoreTests", dependencies: ["MachineCore", "HostOS"]),
    ],
    swiftLanguageModes: [.v6]
)
