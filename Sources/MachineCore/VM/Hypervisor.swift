import FoundationEssentials
import HostOS
import SSH
import Virt

/// Runs machines as libvirt domains: defines them from the machine's config and the cached
/// image, starts and stops them, and reads their state from libvirt (never from our files).
public final class Hypervisor {
    public let connection: Connection
    public let store: MachineStore

    /// `--connect` wins, then MACHINE_LIBVIRT_URI, then qemu:///system for root and
    /// qemu:///session for everyone else (libvirt spawns a per-user daemon for it).
    public static func defaultURI(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let flag, !flag.isEmpty { return flag }
        if let env = environment["MACHINE_LIBVIRT_URI"], !env.isEmpty { return env }
        return HostUser.isRoot ? "qemu:///system" : "qemu:///session"
    }

    /// The libvirt host when it is another one (QEMU's files and ports are there, not here).
    public let remote: RemoteLibvirt?

    public init(uri: String, store: MachineStore, remote: RemoteLibvirt? = nil) throws(MachineError) {
        self.remote = remote
        do {
            connection = try Connection(uri: uri)
        } catch where error.code == LibvirtError.libraryUnusable {
            throw MachineError(error.message, hint: "install it with `apt-get install libvirt0` (in a source checkout, scripts/host-setup.sh installs all machine needs)")
        } catch {
            throw MachineError(
                "cannot reach libvirt at \(uri): \(error.message)",
                hint: remote.map { "check that `\($0.loginCommand)` logs in without a question (a host key it does not know or that changed, a key it does not take) and that libvirtd runs there (`virsh -c '\(uri)' version`)" }
                    ?? (uri.hasSuffix("/system")
                    ? "start the daemons as root with \(HostCheck.setupCommand) (without systemd it also keeps a /dev/kvm that cannot run guests away from libvirtd, which would otherwise re-probe QEMU for a minute at every start), or `systemctl start libvirtd`"
                    : "check that libvirt is installed (scripts/host-setup.sh, or the Debian package's Depends), or pick another daemon with --connect"))
        }
        self.store = store
    }

    /// The domain name of a machine of this home.
    public func domainName(_ name: String) -> String {
        MachineName.domainName(name, homeID: store.paths.homeID)
    }

    /// Who this home's machine `name` is in the domain's metadata, with the config to keep there.
    func owner(_ name: String, config: MachineConfig? = nil) -> DomainDefinition.Owner {
        DomainDefinition.Owner(home: store.paths.home.standardizedFileURL.path, machine: name, config: config?.encoded())
    }

    /// The machine's domain, if libvirt has one that is this home's: by its name, checked
    /// against the owner in its metadata; or one named as before names carried the home's id
    /// whose data disk is this machine's (adopted: the next start defines it anew under its
    /// new name). A domain of another home is never returned, so no verb can touch it.
    public func domain(_ name: String) throws(MachineError) -> Domain? {
        do {
            if let domain = try connection.domain(named: domainName(name)) {
                let found = try domain.metadata(namespace: DomainDefinition.Owner.namespace).flatMap(DomainDefinition.Owner.init(xml:))
                guard let found, found.isSameMachine(as: owner(name)) else {
                    throw MachineError(
                        "the libvirt domain \(domainName(name)) is not this home's \(name): it belongs to "
                            + (found.map { "the machine \($0.machine) of MACHINE_HOME=\($0.home)" } ?? "nobody machine knows (it has no owner in its metadata)"),
                        hint: "machine leaves it alone; use another MACHINE_HOME, or remove that domain with virsh if it is stale",
                        kind: .foreignDomain)
                }
                return domain
            }
            if let legacy = try connection.domain(named: MachineName.legacyDomainName(name)),
               try legacy.xml().contains("<source file='\(DomainDefinition.escape(store.files(name).dataDisk.path))'") {
                return legacy
            }
            return nil
        } catch let error as MachineError {
            throw error
        } catch {
            throw MachineError("cannot ask libvirt about \(name): \(error)")
        }
    }

    /// The config machine last wrote for `name`, as kept in its domain's metadata (with the one
    /// it replaced); nil when libvirt has no domain for it, or
    /// one made before machine kept a copy there.
    public func recordedConfig(_ name: String) throws(MachineError) -> RecordedConfig? {
        guard let domain = try domain(name) else { return nil }
        do {
            let owner = try domain.metadata(namespace: DomainDefinition.Owner.namespace, persistent: true)
                .flatMap(DomainDefinition.Owner.init(xml:))
            return owner?.config.map { RecordedConfig(config: $0, previous: owner?.previous) }
        } catch {
            throw MachineError("cannot read the metadata of \(domain.name): \(error.message)")
        }
    }

    /// Keeps `config` as the one machine last wrote, in the machine's domain if it has one
    /// (one without a domain gets it kept when its domain is defined at the next boot), with
    /// the one it replaces.
    public func record(config: MachineConfig, previous: MachineConfig?) throws(MachineError) {
        guard let domain = try domain(config.name) else { return }
        var owner = owner(config.name, config: config)
        owner.previous = previous?.encoded()
        do {
            try domain.setMetadata(owner.elementForSetMetadata, key: DomainDefinition.Owner.key,
                                   namespace: DomainDefinition.Owner.namespace)
        } catch {
            throw MachineError("cannot keep the config of \(config.name) in its domain \(domain.name): \(error.message)")
        }
    }

    /// The state libvirt reports, `.stopped` when libvirt has no domain for it.
    public func state(_ name: String) throws(MachineError) -> Domain.State {
        try status(name).state
    }

    /// The state with libvirt's reason ("paused", "unknown"); stopped, "not defined" when
    /// libvirt has no domain for it.
    public func status(_ name: String) throws(MachineError) -> Domain.Status {
        try status(of: domain(name), name: name)
    }

    /// The state of a domain `domain(name)` already found (stopped, "not defined" for none).
    public func status(of domain: Domain?, name: String) throws(MachineError) -> Domain.Status {
        guard let domain else { return Domain.Status(state: .stopped, reason: "not defined") }
        do {
            return try domain.status()
        } catch {
            throw MachineError("cannot read the state of \(name): \(error.message)")
        }
    }

    /// libvirt's log of the machine's QEMU (nil for a remote daemon).
    public func qemuLog(_ name: String) -> URL? {
        qemuLog(domainNamed: (try? domain(name))?.name ?? domainName(name))
    }

    public func qemuLog(domainNamed domain: String) -> URL? {
        QEMULog.path(domain: domain, uri: connection.uri)
    }

    /// Whether this connection is libvirt's system daemon (which can run virtiofsd).
    public var isSystemDaemon: Bool { connection.uri.hasSuffix("/system") }

    public func definition(config: MachineConfig, files: MachineFiles, image: GuestImage?, accelerator: Accelerator,
                           shares: [SharedFolder] = [], agentInputPorts: [SSHPortLink.Role: Int] = [:], engineDisk: String? = nil) -> DomainDefinition {
        let boot: DomainDefinition.Boot
        if let iso = config.iso {
            boot = .iso(iso)
        } else if let image {
            boot = .kernel(kernel: image.kernel.path, initrd: image.initramfs.path, commandLine: image.kernelCommandLine)
        } else {
            boot = .iso("")
        }
        // The system daemon would run QEMU as its own user, who cannot open files in the
        // user's home: run it as the user instead (and leave the files' owners alone).
        // A remote daemon runs it as its own user, and labels the volumes it is given for it.
        let processOwner = isSystemDaemon && remote == nil ? (uid: HostUser.id, gid: HostUser.groupID) : nil
        return DomainDefinition(
            name: domainName(config.name), memoryMiB: config.memoryMiB, cpus: config.cpus,
            // A test that pretends KVM still needs a domain this host can run.
            accelerator: AcceleratorProbe.pretendsKVM ? .tcg : accelerator, boot: boot, dataDisk: files.dataDisk.path, seed: files.seed.path, engineDisk: engineDisk,
            consoleLog: files.consoleLog.path, sshPort: config.sshPort, processOwner: processOwner, shares: shares,
            agentLinks: SSHPortLink.Role.allCases.compactMap { role in
                agentInputPorts[role].map { .init(role: role, socket: files.agentLinkSocket(role).path, inputPort: $0) }
            },
            owner: owner(config.name, config: config))
    }

    /// Defines (again) and boots the machine; returns once libvirt has started QEMU. Whatever
    /// an earlier boot left (a paused or crashed QEMU, one still shutting down, a saved state,
    /// an older definition) is stopped and replaced: the definition is made anew at every
    /// start so that a new image or changed settings take effect.
    public func start(_ definition: DomainDefinition, name: String) throws(MachineError) {
        let old = try domain(name)
        do {
            if let old {
                if try old.state() == .running { return }
                // Undefining a domain that still has a QEMU only makes it transient, and the
                // new definition would then clash with it ("already exists with uuid").
                if try old.isActive() { try old.destroy() }
                try old.undefine()
            }
            let domain = try connection.define(xml: definition.xml())
            try domain.start()
        } catch {
            // libvirt loses the error of work it does in a child process (setting up QEMU's
            // own /dev, say): its daemon's log has the words then.
            throw MachineError("libvirt could not start \(name): \(error.message)",
                               hint: error.code == 0 && isSystemDaemon
                                   ? "libvirt gave no reason here; its daemon's log has it: /var/log/libvirt/libvirtd.log"
                                   : "see `machine logs --qemu \(name)` for QEMU's own words")
        }
    }

    /// Saves the running machine's memory and devices to disk (libvirt's managed save) and
    /// stops its QEMU; `restore` brings it back as it was.
    public func save(_ name: String) throws(MachineError) {
        guard let domain = try domain(name) else { throw MachineError("\(name) is not running", hint: "`machine up \(name)` starts it") }
        do {
            try domain.managedSave()
        } catch {
            throw MachineError("cannot save \(name): \(error.message)",
                               hint: "check the free space where libvirt keeps saved states (/var/lib/libvirt/qemu/save for root, ~/.config/libvirt/qemu/save otherwise)")
        }
    }

    /// Whether the machine has a saved state waiting to be restored.
    public func hasSavedState(_ name: String) throws(MachineError) -> Bool {
        try onDomain(name, otherwise: false, failure: "cannot ask libvirt about \(name)'s saved state") { domain throws(LibvirtError) in
            try domain.hasManagedSave()
        }
    }

    /// Runs the machine again from its saved state.
    public func restore(_ name: String) throws(MachineError) {
        try onDomain(name, otherwise: (), failure: "cannot restore \(name) from its saved state",
                     hint: "`machine rm --force \(name)` if it keeps failing; `machine logs --qemu \(name)` has QEMU's words") { domain throws(LibvirtError) in
            try domain.start()
        }
    }

    /// Throws the saved state away, so the next start boots afresh.
    public func discardSavedState(_ name: String) throws(MachineError) {
        try onDomain(name, otherwise: (), failure: "cannot remove the saved state of \(name)") { domain throws(LibvirtError) in
            try domain.removeManagedSave()
        }
    }

    /// Lets a paused machine run again.
    public func resume(_ name: String) throws(MachineError) {
        try onDomain(name, otherwise: (), failure: "cannot resume \(name)", hint: "`machine restart \(name)` boots it again") { domain throws(LibvirtError) in
            try domain.resume()
        }
    }

    /// `call` on the machine's domain (`otherwise` if it has none), libvirt's error told after
    /// `failure`.
    private func onDomain<T>(_ name: String, otherwise: T, failure: @autoclosure () -> String, hint: String? = nil,
                             _ call: (Domain) throws(LibvirtError) -> T) throws(MachineError) -> T {
        guard let domain = try domain(name) else { return otherwise }
        do {
            return try call(domain)
        } catch {
            throw MachineError("\(failure()): \(error.message)", hint: hint)
        }
    }

    /// Stops the machine from whatever state it is in. A running guest (or one paused by a
    /// user, which is let run again first) gets a clean shutdown through ACPI, waited for up
    /// to `timeout` seconds, then the plug is pulled; a guest that cannot shut down by itself
    /// (paused by QEMU, crashed, suspended) is stopped at once. Returns true if the guest
    /// stopped by itself.
    @discardableResult
    public func stop(_ name: String, force: Bool, timeout: Double = 60) throws(MachineError) -> Bool {
        guard let domain = try domain(name) else { return true }
        do {
            var status = try domain.status()
            if status.state == .stopped { return true }
            if !force && status.state == .paused && status.reason == "user" {
                try domain.resume()
                status = try domain.status()
            }
            if !force && [.running, .shuttingDown].contains(status.state) {
                if status.state == .running { try domain.shutdown() }
                let deadline = Date().addingTimeInterval(timeout)
                while Date() < deadline {
                    if try !domain.isActive() { return true }
                    Threads.sleep(0.2)
                }
            }
            if try domain.isActive() { try domain.destroy() }
            return false
        } catch {
            throw MachineError("cannot stop \(name): \(error.message)")
        }
    }

    /// Removes the domain definition, stopping its QEMU first whatever its state.
    public func undefine(_ name: String) throws(MachineError) {
        guard let domain = try domain(name) else { return }
        do {
            if try domain.isActive() { try domain.destroy() }
            try domain.undefine()
        } catch {
            throw MachineError("cannot remove the libvirt domain of \(name): \(error.message)")
        }
    }
}
