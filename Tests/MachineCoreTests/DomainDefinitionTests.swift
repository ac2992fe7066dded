import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import MachineCore
import Testing
import Virt

@Suite struct DomainDefinitionTests {
    func definition(folder: String, boot: DomainDefinition.Boot? = nil) -> DomainDefinition {
        DomainDefinition(
            name: "machine-test-\(UUID().uuidString.prefix(8).lowercased())", memoryMiB: 1024, cpus: 2, accelerator: .tcg,
            boot: boot ?? .kernel(kernel: "\(folder)/vmlinux", initrd: "\(folder)/initramfs.img", commandLine: "console=ttyS0 quiet"),
            dataDisk: "\(folder)/data.qcow2", seed: "\(folder)/seed.iso", engineDisk: "\(folder)/engine.img", consoleLog: "\(folder)/console.log", sshPort: 42022,
            agentLinks: [.init(role: .engine, socket: "\(folder)/ssh-port.sock", inputPort: 42023),
                         .init(role: .ports, socket: "\(folder)/ports-port.sock", inputPort: 42024)],
            owner: .init(home: folder, machine: "test"))
    }

    static let hostileFolders = [
        "/home/o'brien/.machine",
        "/home/a\"b/x",
        "/tmp/<script>&amp;</script>",
        "/tmp/$(rm -rf ~)/`id`",
        "/tmp/with spaces/and tabs",
        "/tmp/ünïcødé/日本語/🐳",
        "/tmp/]]>/<!--/-->",
    ]

    @Test(arguments: hostileFolders)
    func hostilePathsSurviveLibvirtsParserUnchanged(folder: String) throws {
        let connection = try Connection(uri: "test:///default")
        let wanted = definition(folder: folder)
        let domain = try connection.define(xml: wanted.xml())
        defer { try? domain.undefine() }
        let stored = try domain.xml()
        // libvirt read back exactly our paths: nothing was cut, nothing was added.
        let document = try XMLDocument(xmlString: stored)
        let sources = try document.nodes(forXPath: "//disk/source/@file").compactMap(\.stringValue)
        #expect(sources == ["\(folder)/data.qcow2", "\(folder)/seed.iso", "\(folder)/engine.img"])
        #expect(try document.nodes(forXPath: "//os/kernel").first?.stringValue == "\(folder)/vmlinux")
        #expect(try document.nodes(forXPath: "//disk").count == 3)
        #expect(try document.nodes(forXPath: "//channel/source/@path").compactMap(\.stringValue) == ["\(folder)/ssh-port.sock", "\(folder)/ports-port.sock"])
        #expect(domain.name == wanted.name)
        // The owner in libvirt's metadata reads back as written, hostile home and all.
        let owner = try domain.metadata(namespace: DomainDefinition.Owner.namespace).flatMap(DomainDefinition.Owner.init(xml:))
        #expect(owner == DomainDefinition.Owner(home: folder, machine: "test"))
    }

    @Test func theConfigCopyInTheMetadataIsReadBackAndReplaced() throws {
        let connection = try Connection(uri: "test:///default")
        var wanted = definition(folder: "/m")
        let first = MachineConfig(name: "test", sshPort: 42022, created: Date(timeIntervalSince1970: 1_800_000_000), mounts: [Share(hostPath: "/home/o'brien", guestPath: "/home/o'brien")])
        wanted.owner = .init(home: "/m", machine: "test", config: first.encoded())
        let domain = try connection.define(xml: wanted.xml())
        defer { try? domain.undefine() }
        func kept() throws -> DomainDefinition.Owner? {
            try domain.metadata(namespace: DomainDefinition.Owner.namespace, persistent: true).flatMap(DomainDefinition.Owner.init(xml:))
        }
        #expect(try kept()?.config.map(MachineConfig.decode) == first)
        #expect(try kept()?.previous == nil)
        // Replaced in place: still this machine, with the new copy and the one it replaced.
        var second = first
        second.publishAddress = "0.0.0.0"
        try domain.setMetadata(DomainDefinition.Owner(home: "/m", machine: "test", config: second.encoded(), previous: first.encoded()).elementForSetMetadata,
                               key: DomainDefinition.Owner.key, namespace: DomainDefinition.Owner.namespace)
        let owner = try #require(try kept())
        #expect(owner.isSameMachine(as: .init(home: "/m", machine: "test")))
        #expect(try owner.config.map(MachineConfig.decode) == second)
        #expect(try owner.previous.map(MachineConfig.decode) == first)
    }

    @Test func theOwnerIsReadWhateverPrefixAndEntitiesLibvirtHandsBack() {
        let config = Data("{\"name\":\"dev\"}".utf8)
        // As libvirt gives it back: its own prefix, its own quotes and character references.
        let xml = "<ns0:owner xmlns:ns0=\"https://machine.invalid/xmlns/domain/1\"><ns0:home>/home/o&apos;b &amp; c/&lt;x&gt;/&#39;&#34;&quot;/h\u{e9}/&amp;lt;</ns0:home>"
            + "<ns0:name>dev</ns0:name><ns0:config>\(config.base64EncodedString())</ns0:config></ns0:owner>"
        #expect(DomainDefinition.Owner(xml: xml) == .init(home: "/home/o'b & c/<x>/'\"\"/h\u{e9}/&lt;", machine: "dev", config: config))
        // Our own form, unprefixed, and an entity we never write kept as it is.
        #expect(DomainDefinition.Owner(xml: "<owner><home>/a&nbsp;&amp</home><name>n</name></owner>") == .init(home: "/a&nbsp;&amp", machine: "n"))
        let written = DomainDefinition.Owner(home: "/m/&<>'\"", machine: "x", config: config, previous: Data("{}".utf8))
        #expect(DomainDefinition.Owner(xml: written.xml) == written)
        // A closing tag of another element, or none, is no value.
        #expect(DomainDefinition.Owner(xml: "<owner><home>/a</name><name>n</name></owner>") == nil)
        #expect(DomainDefinition.Owner(xml: "<owner><home>/a") == nil)
    }

    @Test func configChangesAreNamedInConfigJSONsWords() {
        let before = MachineConfig(name: "dev", sshPort: 42022, mounts: [Share(hostPath: "/home/u", guestPath: "/home/u")])
        var after = before
        after.mounts.append(Share(hostPath: "/", guestPath: "/host"))
        after.publishAddress = "0.0.0.0"
        #expect(after.changes(from: before) == [
            #"mounts added {"guestPath":"/host","hostPath":"/","readOnly":false}"#,
            #"publishAddress "127.0.0.1" -> "0.0.0.0""#,
        ])
        #expect(before.changes(from: before).isEmpty)
    }

    @Test func isoBootAddsACdrom() throws {
        let xml = definition(folder: "/m", boot: .iso("/isos/boot2docker's.iso")).xml()
        let document = try XMLDocument(xmlString: xml)
        #expect(try document.nodes(forXPath: "//disk[@device='cdrom']/source/@file").first?.stringValue == "/isos/boot2docker's.iso")
        #expect(try document.nodes(forXPath: "//os/kernel").isEmpty)
    }

    @Test func sshForwardsBindLoopbackOnly() throws {
        let document = try XMLDocument(xmlString: definition(folder: "/m").xml())
        let args = try document.nodes(forXPath: "//*[local-name()='arg']/@value").compactMap(\.stringValue)
        let netdev = try #require(args.first { $0.hasPrefix("user,") })
        // Three forwards, to sshd and to the inputs of the agent's two sshds, all on loopback
        // only, and nothing else opened on the host.
        let forwards = netdev.components(separatedBy: ",").filter { $0.hasPrefix("hostfwd=") }
        #expect(forwards == ["hostfwd=tcp:127.0.0.1:42022-:22", "hostfwd=tcp:127.0.0.1:42023-:\(GuestContract.agentInputGuestPort)",
                             "hostfwd=tcp:127.0.0.1:42024-:\(GuestContract.portsInputGuestPort)"])
        #expect(!xml(contains: "type='network'") && !xml(contains: "type='bridge'"))
    }

    @Test func devicesSitOnTheRootBusWithoutUSBAndManySharesStillFit() throws {
        var wanted = definition(folder: "/m")
        wanted.shares = (0..<30).map {
            SharedFolder(tag: "machine-share\($0)", share: Share(hostPath: "/srv/s\($0)", guestPath: "/s\($0)"), transport: .ninep)
        }
        let connection = try Connection(uri: "test:///default")
        let domain = try connection.define(xml: wanted.xml())
        defer { try? domain.undefine() }
        let document = try XMLDocument(xmlString: try domain.xml())
        #expect(try document.nodes(forXPath: "//filesystem").count == 30)
        // No USB controller; given addresses are all on bus 0 and all different.
        #expect(try document.nodes(forXPath: "//controller[@type='usb']/@model").compactMap(\.stringValue) == ["none"])
        let slots = try document.nodes(forXPath: "//devices/*/address[@type='pci'][@bus='0x00']/@slot").compactMap(\.stringValue)
        // The data disk, seed, engine disk, RNG, balloon and serial controller, then as many shares as fit.
        #expect(slots.count == 6 + DomainDefinition.shareSlotCount)
        #expect(Set(slots).count == slots.count)
        #expect(!slots.contains("0x10"))  // the network device's slot (given on QEMU's command line)
    }

    @Test func theAgentsSplitSessionsAreVirtioSerialChannelsAndMoreForwardsOnlyWhenTheImageServesThem() throws {
        let connection = try Connection(uri: "test:///default")
        let domain = try connection.define(xml: definition(folder: "/m").xml())
        defer { try? domain.undefine() }
        let document = try XMLDocument(xmlString: try domain.xml())
        #expect(try document.nodes(forXPath: "//channel[@type='unix']/target[@type='virtio']/@name").compactMap(\.stringValue)
            == [GuestContract.sshPortName, GuestContract.portsPortName])
        #expect(try document.nodes(forXPath: "//channel/source/@path").compactMap(\.stringValue) == ["/m/ssh-port.sock", "/m/ports-port.sock"])
        #expect(try document.nodes(forXPath: "//channel/source/@mode").compactMap(\.stringValue) == ["bind", "bind"])
        // One virtio-serial controller serves both.
        #expect(try document.nodes(forXPath: "//controller[@type='virtio-serial']").count == 1)
        // Its controller on the root bus like every other device, not behind a root port.
        #expect(try document.nodes(forXPath: "//controller[@type='virtio-serial']/address/@bus").compactMap(\.stringValue) == ["0x00"])

        // Their inputs: more forwards from 127.0.0.1 to the guest's listeners.
        #expect(definition(folder: "/m").xml().contains(
            "hostfwd=tcp:127.0.0.1:42022-:22,hostfwd=tcp:127.0.0.1:42023-:\(GuestContract.agentInputGuestPort),hostfwd=tcp:127.0.0.1:42024-:\(GuestContract.portsInputGuestPort)'"))

        var withoutPort = definition(folder: "/m")
        withoutPort.agentLinks = []
        #expect(!withoutPort.xml().contains("<channel") && !withoutPort.xml().contains("virtio-serial"))
        #expect(!withoutPort.xml().contains("42023") && !withoutPort.xml().contains("42024") && withoutPort.xml().contains("hostfwd=tcp:127.0.0.1:42022-:22'"))
    }

    func xml(contains text: String) -> Bool {
        definition(folder: "/m").xml().contains(text)
    }

    @Test func controlCharactersInPathsAreNotRepresentable() {
        #expect(DomainDefinition.isRepresentable(path: "/tmp/ok path/ü"))
        #expect(!DomainDefinition.isRepresentable(path: "/tmp/new\nline"))
        #expect(!DomainDefinition.isRepresentable(path: "relative/path"))
    }
}
