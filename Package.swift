// swift-tools-version:6.0
// machine: a container engine in a tiny libvirt/QEMU VM, reached from the host's docker CLI.
// Module arrows point one way: C system libraries <- Swift wrappers <- MachineCore <- machine.
import PackageDescription

let package = Package(
    name: "machine",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "machine", targets: ["machine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C APIs, imported only by their Swift wrappers.
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        .systemLibrary(name: "CLibSSH2", pkgConfig: "libssh2", providers: [.apt(["libssh2-1-dev"])]),
        // Swift wrappers: one class per C handle, typed errors, no raw pointers leave them.
        .target(name: "Virt", dependencies: ["CLibvirt"]),
        .target(name: "SSH", dependencies: ["CLibSSH2"]),
        // Machines, image, provisioning, forwarding: everything but the command line.
        .target(name: "MachineCore", dependencies: ["Virt", "SSH"]),
        // The command-line executable: one file per command.
        .executableTarget(name: "machine", dependencies: [
            "MachineCore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "VirtTests", dependencies: ["Virt"]),
        .testTarget(name: "SSHTests", dependencies: ["SSH"]),
        .testTarget(name: "MachineCoreTests", dependencies: ["MachineCore"]),
    ],
    swiftLanguageModes: [.v6]
)
