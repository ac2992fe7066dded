import FoundationEssentials
import HostOS
import Virt

/// A machine's config: read as far as machine wrote it, and changed under the machine's lock.
extension Machines {
    /// The machine's config, as far as machine wrote it (`ConfigCopies.trusted`): a guest with
    /// a read-write share of the folder config.json is in could rewrite it (add a share of `/`,
    /// publish ports on every address) for the host to obey at the next boot.
    public func trustedConfig(_ name: String) throws(MachineError) -> MachineConfig {
        try configCopies.trusted(name)
    }

    /// Changes a machine's config under its lock; returns true if anything changed.
    @discardableResult
    func changeConfig(_ name: String, _ change: (inout MachineConfig) throws(MachineError) -> Void) throws(MachineError) -> Bool {
        try lock(name).change(change)
    }

    /// Changes the machine's shares, kept in its config; they take effect at its next boot.
    /// Returns true if anything changed.
    @discardableResult
    public func updateShares(_ name: String, _ change: (inout MachineConfig) throws(MachineError) -> Void) throws(MachineError) -> Bool {
        let systemDaemon = hypervisor.isSystemDaemon
        let folder = store.files(name).folder
        return try changeConfig(name) { (config: inout MachineConfig) throws(MachineError) in
            try change(&config)
            _ = try Shares.devices(config.mounts, type: config.mountType, systemDaemon: systemDaemon, machineFolder: folder)
        }
    }

    /// Changes the machine's config under its lock, then tells a running agent to reload it.
    public func updateForwarding(_ name: String, _ change: (inout MachineConfig) throws(MachineError) -> Void) throws(MachineError) {
        try changeConfig(name, change)
        AgentProcess(name: name, files: store.files(name)).reload()
    }

    /// Lets containers reach the host, or not (`--host-access`); applied at the next boot,
    /// which sets the guest's firewall and names. Returns true if it changed.
    @discardableResult
    public func updateHostAccess(_ name: String, _ on: Bool) throws(MachineError) -> Bool {
        try changeConfig(name) { $0.hostAccess = on }
    }

    /// Marks the machine to be started when the host restarts, or not (`machine autostart`).
    /// Returns true if it changed.
    public func updateAutostart(_ name: String, _ on: Bool) throws(MachineError) -> Bool {
        try changeConfig(name) { $0.autostart = on }
    }

    /// Sets how long the machine waits idle before it sleeps (0: never); its running agent
    /// takes the new time at once. Returns true if it changed.
    @discardableResult
    public func updateIdleSleep(_ name: String, _ seconds: Int) throws(MachineError) -> Bool {
        let changed = try changeConfig(name) { $0.idleSleep = seconds }
        if changed { AgentProcess(name: name, files: store.files(name)).reload() }
        return changed
    }

    /// Adds a manual forward (`machine port add`; see `MachineConfig.addForward`).
    public func addForward(_ name: String, _ forward: ManualForward) throws(MachineError) {
        try updateForwarding(name) { (config) throws(MachineError) in try config.addForward(forward) }
    }

    /// Removes the manual forward from `hostPort` of `proto` (`machine port rm`).
    public func removeForward(_ name: String, hostPort: Int, proto: String = "tcp") throws(MachineError) {
        try updateForwarding(name) { (config) throws(MachineError) in try config.removeForward(hostPort: hostPort, proto: proto) }
    }

    /// Sets the platforms the machine emulates (nil all, empty none). A running guest applies
    /// them at once; a sleeping machine is not woken for it. Either way its next boots
    /// register them from the seed.
    public func updatePlatforms(_ name: String, _ platforms: [String]?) throws(MachineError) -> PlatformsChange {
        guard try changeConfig(name, { $0.platforms = platforms }) else { return .unchanged }
        guard try hypervisor.state(name) == .running, IdleSleep.markedSince(store.files(name)) == nil else { return .nextBoot(nil) }
        return GuestPlatforms(guest: try guest(name)).register(platforms)
    }

    /// Gives the machine a TLS endpoint if it has none (`MachineTLS.enable`); returns true if
    /// anything changed.
    @discardableResult
    public func enableTLS(_ name: String) throws(MachineError) -> Bool {
        try tls.enable(try lock(name))
    }

    /// New TLS certificates in place of the old; a running machine's engine restarts with them.
    public func regenerateCertificates(_ name: String) throws(MachineError) {
        try tls.regenerate(try lock(name))
    }

    /// DOCKER_HOST, DOCKER_CERT_PATH and DOCKER_TLS_VERIFY for the machine's TLS endpoint.
    public func tlsEnvironment(_ name: String) throws(MachineError) -> [(String, String)] {
        try MachineTLS.environment(try store.config(name), files: store.files(name))
    }

    /// Changes how a machine is run (accelerator, CPUs, memory, data disk size): kept in its
    /// config, applied at its next boot (the domain is defined anew at every boot, and the
    /// disk grown before it). A disk only grows. Returns true if anything changed.
    @discardableResult
    public func updateShape(_ name: String, accel: String? = nil, cpus: Int? = nil, memoryMiB: Int? = nil,
                            diskGiB: Int? = nil) throws(MachineError) -> Bool {
        try changeConfig(name) { (config) throws(MachineError) in
            try config.reshape(accel: accel, cpus: cpus, memoryMiB: memoryMiB, diskGiB: diskGiB)
        }
    }
}
