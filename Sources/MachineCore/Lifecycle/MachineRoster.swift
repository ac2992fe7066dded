import FoundationEssentials
import HostOS

/// Adds machines to a home and removes them: the config and folder here, the domain and
/// volumes on the libvirt host.
struct MachineRoster {
    let runtime: LibvirtRuntime

    var store: MachineStore { runtime.store }
    var hypervisor: Hypervisor { runtime.hypervisor }

    func create(_ config: MachineConfig) throws(MachineError) {
        var config = config
        if let remote = runtime.remote {
            // Nothing of this host reaches a remote one's QEMU: no folder, no ISO file.
            if !config.mounts.isEmpty {
                throw MachineError("\(remote.host) is a remote libvirt host: machine does not share folders of this host with a machine there",
                                   hint: "leave out --mount (`up` shares no folder there by default); copy files in with `machine cp`, or run `docker build` with a context", kind: .usage)
            }
            if config.iso != nil {
                throw MachineError("--iso is not offered on a remote libvirt host (\(remote.host)): it boots the built image", kind: .usage)
            }
            config.connect = remote.uri
        }
        // A share type this host or connection cannot serve is refused now, not at boot.
        _ = try Shares.devices(config.mounts, type: config.mountType, systemDaemon: hypervisor.isSystemDaemon,
                               machineFolder: store.files(config.name).folder)
        _ = try store.create(config)
    }

    func remove(_ name: String, force: Bool) throws(MachineError) {
        try MachineName.validate(name)
        let known = HostPath.exists(store.files(name).folder.path)
        let defined = try hypervisor.domain(name) != nil
        guard known || defined else {
            throw MachineError("no machine named \"\(name)\"", hint: "see `machine ls`", kind: .notFound)
        }
        // The lock alone: a machine whose config.json cannot be read can still be removed.
        let lock = known ? try MachineLock(files: store.files(name), name: name) : nil
        defer { withExtendedLifetime(lock) {} }
        let status = try hypervisor.status(name)
        if status.state != .stopped && !force {
            throw MachineError(status.state == .running ? "\(name) is running" : "\(name) \(BootWatcher.describe(status)) and still has a QEMU",
                               hint: "stop it first with `machine stop \(name)`, or use `machine rm --force \(name)`")
        }
        if known {
            AgentProcess(name: name, files: store.files(name)).stop()
        } else {
            AgentProcess.stopStrays(name: name, paths: runtime.paths)
        }
        try hypervisor.undefine(name)
        if known { UserVirtiofsd.stopAll(pidsFile: store.files(name).virtiofsdPids) }
        try runtime.remoteVolumes(name)?.removeOwn()
        try store.remove(name)
    }

    /// Removes what this host has of a machine whose remote libvirt host cannot be reached
    /// (`rm --force`): its agent and its folder. Its domain and volumes stay there; the
    /// returned line says how to remove them once the host answers again.
    static func forgetUnreachable(_ name: String, config: MachineConfig, paths: Paths) throws(MachineError) -> String {
        let store = MachineStore(paths: paths)
        let files = store.files(name)
        let lock = try MachineLock(files: files, name: name)
        defer { withExtendedLifetime(lock) {} }
        AgentProcess(name: name, files: files).stop()
        try store.remove(name)
        let uri = config.connect ?? ""
        let domain = MachineName.domainName(name, homeID: paths.homeID)
        let volumes = [RemoteVolumes.dataDiskName(domain), RemoteVolumes.seedName(domain), RemoteVolumes.consoleName(domain)]
        return "its domain \(domain) and volumes \(volumes.joined(separator: ", ")) stay on that host; once it answers: "
            + "virsh -c '\(uri)' destroy \(domain) (if it runs); virsh -c '\(uri)' undefine \(domain); " + volumes.map { "virsh -c '\(uri)' vol-delete --pool \(RemoteVolumes.poolName) \($0)" }.joined(separator: "; ")
    }
}
