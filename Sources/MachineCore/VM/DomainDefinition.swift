import FoundationEssentials

/// How QEMU executes the guest.
public enum Accelerator: String, Sendable, Codable, CaseIterable {
    case kvm, tcg
}

/// Everything libvirt needs to run one machine, as typed values. `xml()` renders it; every
/// value that comes from a user (names, paths) is escaped there, so a path with quotes, `<`,
/// `$()` or unicode can neither break the XML nor add elements to it.
public struct DomainDefinition: Sendable, Equatable {
    public enum Boot: Sendable, Equatable {
        /// Direct kernel boot of the cached image (the fast path: PVH, no firmware menu).
        case kernel(kernel: String, initrd: String, commandLine: String)
        /// A bootable ISO as a CD-ROM, like boot2docker.iso.
        case iso(String)
    }

    public var name: String
    public var memoryMiB: Int
    public var cpus: Int
    public var accelerator: Accelerator
    public var boot: Boot
    public var dataDisk: String
    public var seed: String
    /// The engine's read-only disk (nil: the engine is uploaded and unpacked instead).
    public var engineDisk: String?
    public var consoleLog: String
    /// Host port on 127.0.0.1 forwarded to the guest's sshd: the machine's only opening.
    public var sshPort: Int
    /// Run QEMU as this uid:gid (for the system daemon, so QEMU can reach files in the
    /// user's home); nil lets libvirt choose (the session daemon runs it as the user).
    public var processOwner: (uid: UInt32, gid: UInt32)?
    /// Host folders the guest mounts, by tag.
    public var shares: [SharedFolder]
    /// The host agent's split SSH sessions, for images that serve them (none: the agent uses
    /// `sshPort` like everyone else).
    public var agentLinks: [AgentLink]
    /// Whose domain this is: kept in libvirt's `<metadata>`, so no other home's machine ever
    /// takes it for its own.
    public var owner: Owner?

    /// The two ends of one of the agent's sessions: the guest's sshd reads a TCP connection
    /// forwarded from `inputPort` on 127.0.0.1 to `role.guestPort`, and writes the virtio-serial
    /// port `role.portName`, which QEMU serves at `socket`.
    public struct AgentLink: Sendable, Equatable {
        public var role: SSHPortLink.Role
        public var socket: String
        public var inputPort: Int

        public init(role: SSHPortLink.Role, socket: String, inputPort: Int) {
            self.role = role
            self.socket = socket
            self.inputPort = inputPort
        }
    }

    public init(name: String, memoryMiB: Int, cpus: Int, accelerator: Accelerator, boot: Boot,
                dataDisk: String, seed: String, engineDisk: String? = nil, consoleLog: String, sshPort: Int,
                processOwner: (uid: UInt32, gid: UInt32)? = nil, shares: [SharedFolder] = [], agentLinks: [AgentLink] = [],
                owner: Owner? = nil) {
        self.name = name
        self.memoryMiB = memoryMiB
        self.cpus = cpus
        self.accelerator = accelerator
        self.boot = boot
        self.dataDisk = dataDisk
        self.seed = seed
        self.engineDisk = engineDisk
        self.consoleLog = consoleLog
        self.sshPort = sshPort
        self.processOwner = processOwner
        self.shares = shares
        self.agentLinks = agentLinks
        self.owner = owner
    }

    public static func == (a: DomainDefinition, b: DomainDefinition) -> Bool {
        a.xml() == b.xml()
    }

    public func xml() -> String {
        let e = Self.escape
        var os = "    <type arch='x86_64' machine='q35'>hvm</type>\n"
        var cdrom = ""
        switch boot {
        case let .kernel(kernel, initrd, commandLine):
            os += "    <kernel>\(e(kernel))</kernel>\n    <initrd>\(e(initrd))</initrd>\n    <cmdline>\(e(commandLine))</cmdline>\n"
        case let .iso(path):
            os += "    <boot dev='cdrom'/>\n"
            cdrom = """
                    <disk type='file' device='cdrom'>
                      <driver name='qemu' type='raw'/>
                      <source file='\(e(path))'/>
                      <target dev='sda' bus='sata'/>
                      <readonly/>
                    </disk>

                """
        }
        // KVM takes the host's CPU; TCG emulates the most capable CPU it can.
        let cpu = accelerator == .kvm ? "<cpu mode='host-passthrough'/>" : "<cpu mode='maximum'/>"
        let owner = processOwner.map {
            "  <seclabel type='static' model='dac' relabel='no'><label>+\($0.uid):+\($0.gid)</label></seclabel>\n"
        } ?? ""
        // virtiofsd reads and writes the guest's buffers directly, so guest memory must be
        // shareable with it.
        let sharedMemory = shares.contains { $0.typeName == "virtiofs" }
            ? "  <memoryBacking>\n    <source type='memfd'/>\n    <access mode='shared'/>\n  </memoryBacking>\n"
            : ""
        // What the agent's session sends out of the guest crosses a virtio-serial port rather than
        // QEMU's user-mode network: no 1460-byte TCP segments to build and acknowledge, which under
        // TCG cost the guest's sshd more than its crypto (README, "Port forwarding").
        let channels = agentLinks.map {
            """
                <channel type='unix'>
                  <source mode='bind' path='\(e($0.socket))'/>
                  <target type='virtio' name='\($0.role.portName)'/>
                </channel>

            """
        }.joined()
        let sshPortChannel = agentLinks.isEmpty ? "" : """
                <controller type='virtio-serial' index='0'>
            \(Self.slot(Self.serialSlot))    </controller>

            """ + channels
        let agentInput = agentLinks.map {
            ",hostfwd=tcp:127.0.0.1:\($0.inputPort)-:\($0.role.guestPort)"
        }.joined()
        let engine = engineDisk.map { Self.readOnlyDiskXML($0, dev: "vdc", serial: GuestContract.engineDiskSerial, slot: Self.engineDiskSlot) } ?? ""
        let filesystems = shares.enumerated().map { index, folder in
            Self.filesystemXML(folder, address: index < Self.shareSlots.count ? Self.slot(Self.shareSlots[index]) : "")
        }.joined()
        return """
            <domain type='\(accelerator == .kvm ? "kvm" : "qemu")' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
              <name>\(e(name))</name>
            \(self.owner.map { "  <metadata>\($0.xml)</metadata>\n" } ?? "")
              <memory unit='MiB'>\(memoryMiB)</memory>
              <vcpu>\(cpus)</vcpu>
            \(sharedMemory)  <os>
            \(os)  </os>
              <features><acpi/>\(accelerator == .tcg ? "<tcg><tb-cache unit='MiB'>\(Self.tcgCodeCacheMiB)</tb-cache></tcg>" : "")</features>
              \(cpu)
              <clock offset='utc'/>
              <on_poweroff>destroy</on_poweroff>
              <on_reboot>restart</on_reboot>
              <on_crash>destroy</on_crash>
              <devices>
                <disk type='file' device='disk'>
                  <driver name='qemu' type='qcow2' discard='unmap'/>
                  <source file='\(e(dataDisk))'/>
                  <target dev='vda' bus='virtio'/>
                  <serial>\(GuestContract.dataDiskSerial)</serial>
            \(Self.slot(Self.dataDiskSlot))    </disk>
            \(Self.readOnlyDiskXML(seed, dev: "vdb", serial: GuestContract.seedDiskSerial, slot: Self.seedSlot))\(engine)\(cdrom)\(filesystems)    <serial type='file'>
                  <source path='\(e(consoleLog))' append='on'/>
                  <target port='0'/>
                </serial>
            \(sshPortChannel)    <rng model='virtio'>
                  <backend model='random'>/dev/urandom</backend>
            \(Self.slot(Self.rngSlot))    </rng>
                <memballoon model='virtio' freePageReporting='on'>
            \(Self.slot(Self.balloonSlot))    </memballoon>
                <controller type='usb' model='none'/>
              </devices>
            \(owner)  <qemu:commandline>
                <qemu:arg value='-netdev'/>
                <qemu:arg value='user,id=\(Self.networkID),hostfwd=tcp:127.0.0.1:\(sshPort)-:22\(agentInput)'/>
                <qemu:arg value='-device'/>
                <qemu:arg value='virtio-net-pci,netdev=\(Self.networkID),bus=pcie.0,addr=\(String(cFormat: "0x%02x", Self.networkSlot))'/>
              </qemu:commandline>
            </domain>

            """
    }

    // Devices sit directly on the q35 root bus, as in a bare `qemu-system-x86_64` boot.
    // Left to itself libvirt puts each behind its own PCIe root port and adds a USB
    // controller; under TCG the guest kernel spends boot time setting up every port and the
    // USB host, for devices that are never hot-plugged. Slot 0 is the host bridge, 0x1f the
    // chipset's LPC/SATA functions.
    static let dataDiskSlot = 0x02
    /// The user-mode network's id, which QEMU's monitor names in `hostfwd_add` (QEMUForwards).
    static let networkID = "machinenet"
    static let seedSlot = 0x03
    static let rngSlot = 0x04
    static let networkSlot = 0x10
    static let serialSlot = 0x1e
    static let engineDiskSlot = 0x1d
    static let balloonSlot = 0x1c
    /// Shares beyond these get no address: libvirt then places them behind root ports.
    static let shareSlots = Array(0x05...0x0f) + Array(0x11...0x1b)

    /// QEMU's cache of translated guest code under TCG. QEMU 7.2 reserves 1 GiB, and a busy
    /// guest fills it, all of it resident for good. 512 MiB ran `docker run` as fast here, and
    /// 256 MiB slower (docs/internals.md, "What gives back what").
    static let tcgCodeCacheMiB = 512
    public static var shareSlotCount: Int { shareSlots.count }

    static func slot(_ number: Int) -> String {
        "      <address type='pci' domain='0x0000' bus='0x00' slot='\(String(cFormat: "0x%02x", number))' function='0x0'/>\n"
    }

    /// A raw, read-only virtio disk the guest finds by its serial (the seed, the engine).
    static func readOnlyDiskXML(_ path: String, dev: String, serial: String, slot: Int) -> String {
        """
            <disk type='file' device='disk'>
              <driver name='qemu' type='raw'/>
              <source file='\(escape(path))'/>
              <target dev='\(dev)' bus='virtio'/>
              <serial>\(serial)</serial>
              <readonly/>
        \(Self.slot(slot))    </disk>

        """
    }

    /// One `<filesystem>`. 9p uses accessmode squash: files the guest creates belong to the
    /// user QEMU runs as (the user who runs machine), and a failing chown is not an error.
    static func filesystemXML(_ folder: SharedFolder, address: String = "") -> String {
        let e = Self.escape
        let driver: String
        switch folder.transport {
        case let .userVirtiofs(_, socket):
            // Started by machine, not libvirt: the domain only connects to its socket, and
            // the folder, the access mode and read-only are virtiofsd's business.
            return """
                    <filesystem type='mount'>
                      <driver type='virtiofs' queue='1024'/>
                      <source socket='\(e(socket))'/>
                      <target dir='\(e(folder.tag))'/>
                \(address)    </filesystem>

                """
        case let .virtiofs(binary):
            driver = """
                      <driver type='virtiofs' queue='1024'/>
                      <binary path='\(e(binary))'/>

                """
        case .ninep:
            driver = "          <driver type='path'/>\n"
        }
        return """
                <filesystem type='mount' accessmode='\(folder.typeName == "virtiofs" ? "passthrough" : "squash")'>
            \(driver)          <source dir='\(e(folder.share.hostPath))'/>
                  <target dir='\(e(folder.tag))'/>
            \(folder.share.readOnly ? "          <readonly/>\n" : "")    \(address)    </filesystem>

            """
    }
}
