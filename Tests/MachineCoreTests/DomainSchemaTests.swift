import Foundation
import HostOS
import MachineCore
import Testing
import Virt

/// No host of this kind runs a KVM guest, so the definition real users with KVM get is never
/// booted in the suite: it is checked against libvirt's own schema (virt-xml-validate, from
/// libvirt-clients, which host setup installs) for each accelerator, boot and share transport,
/// and defined on libvirt's test driver.
@Suite struct DomainSchemaTests {
    static let shapes: [(Accelerator, DomainDefinition.Boot, SharedFolder.Transport?)] = [
        (.kvm, .kernel(kernel: "/m/vmlinux", initrd: "/m/initramfs.img", commandLine: "console=ttyS0"), .virtiofs(binary: "/usr/lib/qemu/virtiofsd")),
        (.kvm, .iso("/m/boot2docker.iso"), .ninep),
        (.kvm, .kernel(kernel: "/m/vmlinux", initrd: "/m/initramfs.img", commandLine: "console=ttyS0"), .userVirtiofs(binary: "/usr/lib/qemu/virtiofsd", socket: "/m/vfs.sock")),
        (.tcg, .kernel(kernel: "/m/vmlinux", initrd: "/m/initramfs.img", commandLine: "console=ttyS0"), .ninep),
        (.tcg, .iso("/m/boot2docker.iso"), nil),
    ]

    func definition(_ accelerator: Accelerator, _ boot: DomainDefinition.Boot, _ transport: SharedFolder.Transport?) -> DomainDefinition {
        DomainDefinition(
            name: "machine-schema-\(UUID().uuidString.prefix(8).lowercased())", memoryMiB: 2048, cpus: 4, accelerator: accelerator, boot: boot,
            dataDisk: "/m/data.qcow2", seed: "/m/seed.iso", engineDisk: "/m/engine.img", consoleLog: "/m/console.log", sshPort: 42022,
            processOwner: (1000, 1000),
            shares: transport.map { [SharedFolder(tag: "machine-share0", share: Share(hostPath: "/home/me", guestPath: "/home/me"), transport: $0)] } ?? [],
            agentLinks: [.init(role: .engine, socket: "/m/ssh-port.sock", inputPort: 42023), .init(role: .ports, socket: "/m/ports-port.sock", inputPort: 42024)],
            owner: .init(home: "/m", machine: "schema"))
    }

    @Test(arguments: 0..<shapes.count)
    func everyDefinitionValidatesAgainstLibvirtsSchema(shape: Int) throws {
        let (accelerator, boot, transport) = Self.shapes[shape]
        let xml = definition(accelerator, boot, transport).xml()
        #expect(xml.contains(accelerator == .kvm ? "<domain type='kvm'" : "<domain type='qemu'"))
        #expect(xml.contains(accelerator == .kvm ? "<cpu mode='host-passthrough'/>" : "<cpu mode='maximum'/>"))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("machine-schema-\(UUID().uuidString).xml")
        try xml.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try Subprocess.run(["virt-xml-validate", file.path, "domain"])
        #expect(result.status == 0, "\(result.output)\n\(xml)")
        #expect(result.output.contains("validates"))
    }

    /// The test driver parses and keeps a definition as the QEMU driver would read its XML.
    @Test(arguments: Accelerator.allCases)
    func libvirtsTestDriverTakesTheDefinition(accelerator: Accelerator) throws {
        let connection = try Connection(uri: "test:///default")
        let wanted = definition(accelerator, .kernel(kernel: "/m/vmlinux", initrd: "/m/initramfs.img", commandLine: "console=ttyS0"), .ninep)
        let domain = try connection.define(xml: wanted.xml())
        defer { try? domain.undefine() }
        #expect(try domain.xml().contains("<cpu mode='\(accelerator == .kvm ? "host-passthrough" : "maximum")'"))
    }
}
