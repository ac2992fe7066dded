import Foundation
import HostOS
import Virt
#if canImport(Glibc)
import Glibc
#endif

/// A machine's config: read as far as machine wrote it, and changed under the machine's lock.
extension Machines {
    /// The machine's config, as far as machine wrote it. A guest with a read-write share of
    /// the folder config.json is in could rewrite it (add a share of `/`, publish ports on
    /// every address) for the host to obey at the next boot; so machine keeps a copy of what
    /// it last wrote in the domain's metadata, in libvirt's own store, and a config.json that
    /// differs from it is refused, taken or put back as `foreignConfigChange` says. A machine
    /// with no copy yet (never booted, or made by an older machine) is taken as it is.
    public func trustedConfig(_ name: String) throws(MachineError) -> MachineConfig {
        let files = store.files(name)
        let config = try store.config(name)
        guard let recordedData = try hypervisor.recordedConfig(name) else { return config }
        let recorded: MachineConfig
        do {
            recorded = try MachineConfig.decode(recordedData)
        } catch {
            throw MachineError("the copy of \(name)'s config kept in its libvirt domain cannot be read (\(error))",
                               hint: "`machine start --accept-config \(name)` takes \(files.config.path) as it is")
        }
        guard recorded != config else { return config }
        let changes = config.changes(from: recorded)
        switch foreignConfigChange {
        case .refuse:
            let command = MachineName.commandSuffix(name)
            throw MachineError(
                "\(files.config.path) was changed, and not by machine: " + changes.joined(separator: "; "),
                hint: "anything that can write there can: a guest with a read-write share of that folder, or an edit by hand."
                    + " If you made this change, `machine start --accept-config\(command)` takes it;"
                    + " `machine start --restore-config\(command)` puts back what machine last wrote",
                kind: .configChanged)
        case .accept:
            try hypervisor.record(config: config)
            progress("took the config of \(name) as it is now: " + changes.joined(separator: "; "))
            return config
        case .restore:
            try AtomicFile.save(recorded.encoded(), to: files.config, mode: 0o600)
            progress("put back the config of \(name) that machine last wrote, undoing: " + changes.joined(separator: "; "))
            return recorded
        }
    }

    /// Changes a machine's config under its lock; returns true if anything changed.
    @discardableResult
    func changeConfig(_ name: String, _ change: (inout MachineConfig) throws(MachineError) -> Void) throws(MachineError) -> Bool {
        let files = store.files(name)
        _ = try store.config(name)  // a machine that does not exist says so before any lock file is made
        let lock = try MachineLock(files: files, name: name)
        defer { withExtendedLifetime(lock) {} }
        var config = try trustedConfig(name)
        let before = config
        try change(&config)
        guard config != before else { return false }
        try saveConfig(config)
        return true
    }

    /// Writes config.json and machine's copy of it in the domain; the caller holds the lock.
    func saveConfig(_ config: MachineConfig) throws(MachineError) {
        try AtomicFile.save(config.encoded(), to: store.files(config.name).config, mode: 0o600)
        try hypervisor.record(config: config)
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

    /// Adds a manual forward (`machine port add`): not over the machine's own SSH port, nor a
    /// host port already forwarded.
    public func addForward(_ name: String, _ forward: ManualForward) throws(MachineError) {
        try updateForwarding(name) { (config) throws(MachineError) in
            guard forward.hostPort != config.sshPort else {
                throw MachineError("host port \(forward.hostPort) is \(name)'s own SSH port", hint: "pick another host port", exitCode: 64)
            }
            let suffix = forward.proto == "tcp" ? "" : "/\(forward.proto)"
            guard !config.ports.contains(where: { $0.hostPort == forward.hostPort && $0.proto == forward.proto }) else {
                throw MachineError("host port \(forward.hostPort)\(suffix) is already forwarded",
                                   hint: "see `machine port ls \(name)`; remove it with `machine port rm \(name) \(forward.hostPort)\(suffix)`", exitCode: 1)
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
                                   hint: "give --disk \(config.diskGiB)G or more; for a smaller disk, `machine rm \(name)` and create it again", exitCode: 64)
            }
            if let accel { config.accel = accel }
            if let cpus { config.cpus = cpus }
            if let memoryMiB { config.memoryMiB = memoryMiB }
            if let diskGiB { config.diskGiB = diskGiB }
        }
    }
}
