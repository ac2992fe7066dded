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

    /// Adds a manual forward (`machine port add`): not over the machine's own SSH port, nor a
    /// host port already forwarded.
    public func addForward(_ name: String, _ forward: ManualForward) throws(MachineError) {
        try updateForwarding(name) { (config) throws(MachineError) in
            guard forward.hostPort != config.sshPort else {
                throw MachineError("host port \(forward.hostPort) is \(name)'s own SSH port", hint: "pick another host port", kind: .usage)
            }
            let suffix = forward.proto == "tcp" ? "" : "/\(forward.proto)"
            guard !config.ports.contains(where: { $0.hostPort == forward.hostPort && $0.proto == forward.proto }) else {
                throw MachineError("host port \(forward.hostPort)\(suffix) is already forwarded",
                                   hint: "see `machine port ls \(name)`; remove it with `machine port rm \(name) \(forward.hostPort)\(suffix)`")
            }
            config.ports.append(forward)
        }
    }

    /// Removes the manual forward from `hostPort` of `proto` (`machine port rm`).
    public func removeForward(_ name: String, hostPort: Int, proto: String = "tcp") throws(MachineError) {
        try updateForwarding(name) { (config) throws(MachineError) in
            guard config.ports.contains(where: { $0.hostPort == hostPort && $0.proto == proto }) else {
                throw MachineError("no manual forward from host port \(hostPort)\(proto == "tcp" ? "" : "/\(proto)")", hint: "see `machine port ls \(name)`")
            }
            config.ports.removeAll { $0.hostPort == hostPort && $0.proto == proto }
        }
    }

    /// Changes how a machine is run (accelerator, CPUs, memory, data disk size): kept in its
    /// config, applied at its next boot (the domain is defined anew at every boot, and the
    /// disk grown before it). A disk only grows. Returns true if anything changed.
    @discardableResult
    public func updateShape(_ name: String, accel: String? = nil, cpus: Int? = nil, memoryMiB: Int? = nil,
                            diskGiB: Int? = nil) throws(MachineError) -> Bool {
        try changeConfig(name) { (config) throws(MachineError) in
            if let diskGiB, diskGiB < config.diskGiB {
                throw MachineError("the data disk of \(name) is \(config.diskGiB) GiB and a disk only grows: \(diskGiB) GiB would lose what is on it",
                                   hint: "give --disk \(config.diskGiB)G or more; for a smaller disk, `machine rm \(name)` and create it again", kind: .usage)
            }
            if let accel { config.accel = accel }
            if let cpus { config.cpus = cpus }
            if let memoryMiB { config.memoryMiB = memoryMiB }
            if let diskGiB { config.diskGiB = diskGiB }
        }
    }
}
