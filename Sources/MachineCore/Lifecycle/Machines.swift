import Foundation
import HostOS
import Virt

/// The machine verbs, as the command line uses them: every one that changes a machine takes
/// its lock first; states come from libvirt.
public final class Machines {
    let store: MachineStore
    let hypervisor: Hypervisor
    public let paths: Paths
    /// Where progress lines go (stderr for the CLI).
    public var progress: (String) -> Void = { _ in }
    /// What to do with a config.json that is not what machine last wrote (`trustedConfig`).
    public var foreignConfigChange: ForeignConfigChange = .refuse

    public enum ForeignConfigChange: Sendable {
        /// Stop with an error that says what changed and how to go on.
        case refuse
        /// Take the file as it is (`--accept-config`).
        case accept
        /// Put back what machine last wrote (`--restore-config`).
        case restore
    }

    /// The libvirt host when it is not this one (qemu+ssh://): its machines' files are volumes
    /// there, and their sshd is reached through it.
    public let remote: RemoteLibvirt?

    public init(paths: Paths, uri: String) throws(MachineError) {
        self.paths = paths
        remote = try RemoteLibvirt(uri: uri)
        store = MachineStore(paths: paths)
        hypervisor = try Hypervisor(uri: uri, store: store, remote: remote)
    }

    /// The URI of the libvirt daemon these verbs talk to.
    public var uri: String { hypervisor.connection.uri }

    /// The files of this home's machine `name` (whether it exists or not).
    public func files(_ name: String) -> MachineFiles {
        store.files(name)
    }

    /// The machine's config as it is on disk, for showing it; verbs that act on a config go
    /// through `trustedConfig`.
    public func config(_ name: String) throws(MachineError) -> MachineConfig {
        try store.config(name)
    }

    /// Every machine of this home, each with its config or why it cannot be read.
    public func all() -> [(name: String, config: Result<MachineConfig, MachineError>)] {
        store.all()
    }

    /// How to reach the machine's sshd (`machine ssh`, `cp`).
    public func guest(_ name: String) throws(MachineError) -> GuestSSH {
        guest(try store.config(name))
    }

    func guest(_ config: MachineConfig) -> GuestSSH {
        GuestSSH(name: config.name, port: config.sshPort, files: store.files(config.name), jump: remote)
    }

    /// The machine's own volumes on its remote libvirt host (nil for one on this host).
    func remoteVolumes(_ name: String) -> RemoteVolumes? {
        remote.map { RemoteVolumes(connection: hypervisor.connection, host: $0.destination, domain: hypervisor.domainName(name), progress: progress) }
    }

    public func create(_ config: MachineConfig) throws(MachineError) {
        var config = config
        if let remote {
            // Nothing of this host reaches a remote one's QEMU: no folder, no ISO file.
            if !config.mounts.isEmpty {
                throw MachineError("\(remote.host) is a remote libvirt host: machine does not share folders of this host with a machine there",
                                   hint: "leave out --mount (`up` shares no folder there by default); copy files in with `machine cp`, or run `docker build` with a context", exitCode: 64)
            }
            if config.iso != nil {
                throw MachineError("--iso is not offered on a remote libvirt host (\(remote.host)): it boots the built image", exitCode: 64)
            }
            config.connect = remote.uri
        }
        // A share type this host or connection cannot serve is refused now, not at boot.
        _ = try Shares.devices(config.mounts, type: config.mountType, systemDaemon: hypervisor.isSystemDaemon,
                               machineFolder: store.files(config.name).folder)
        _ = try store.create(config)
    }

    public struct Started: Sendable {
        public let alreadyRunning: Bool
        /// It came back from a saved state (`machine suspend`) rather than booting.
        public let resumed: Bool
        public let sshReadyUptime: Double?
        /// The engine version installed by this start, if it installed one.
        public let installedEngine: String?
        public let settingsChanged: Bool
        public let dockerSocket: String
    }

    /// Boots the machine if it is not running (a paused, crashed or half-stopped QEMU left by
    /// an earlier boot is stopped first; one a user paused is resumed instead), provisions the
    /// engine (installing the bundle only when the guest has another version, applying the
    /// engine settings), starts the host agent and waits until the engine answers `/_ping`
    /// through the forwarded socket. On a machine that is already up this checks and changes
    /// nothing, unless `provision` asks for the engine's settings to be applied again.
    public func start(_ name: String, quietBuild: Bool = false, engineTimeout: Double = 180, provision: Bool = false) throws(MachineError) -> Started {
        let files = store.files(name)
        _ = try store.config(name)  // a machine that does not exist says so before any lock file is made
        let lock = try MachineLock(files: files, name: name)
        defer { withExtendedLifetime(lock) {} }
        var config = try trustedConfig(name)
        var uptime: Double?
        var resumed = false
        var bundle: EngineBundle?
        func engineBundle() throws(MachineError) -> EngineBundle {
            if let bundle { return bundle }
            let built = try self.engineBundle(for: config, quiet: quietBuild)
            bundle = built
            return built
        }
        let status = try hypervisor.status(name)
        let alreadyRunning = status.state == .running
        let agent = AgentProcess(name: name, files: files)
        if status.state == .paused && status.reason == "user" {
            progress("\(name) was paused; resuming it")
            try hypervisor.resume(name)
            do {
                uptime = try BootWatcher.waitForSSH(files: files, name: name, status: statusReader(name))
            } catch {
                throw error.machineError
            }
            _ = try BootWatcher.pinHostKey(files: files, config: config)
        } else if !alreadyRunning, try restorableSavedState(config, files: files, quietBuild: quietBuild, engine: engineBundle) {
            progress("resuming \(name) from its saved state")
            resumed = true
            if agent.stop() { progress("stopped the host agent of \(name)'s earlier boot") }
            try hypervisor.restore(name)
            // Its sshd runs on where it was; the key pinned at its first boot is checked at login.
            try waitForRestoredSSH(guest(config))
        } else if !alreadyRunning {
            if status.state != .stopped {
                progress("\(name) was \(BootWatcher.describe(status)); stopping what is left of it and booting it again")
            }
            // An agent serves one boot: one left from an earlier boot (QEMU killed or crashed,
            // the host asleep) would keep reaching for that boot's ports.
            if agent.stop() { progress("stopped the host agent of \(name)'s earlier boot") }
            (uptime, config) = try boot(config, files: files, quietBuild: quietBuild, engine: try engineBundle())
        }
        let guest = guest(config)
        var outcome: Provisioner.Outcome?
        if provision || !alreadyRunning || agent.runningPid() == nil || !EngineAPI.ping(socket: files.dockerSocket.path, timeout: 2) {
            let bundle = try engineBundle()
            let session = try guest.connect()
            // A guest that was paused (or a host that slept) has a clock that stopped with it.
            if let offset = try GuestClock.set(over: session, guest: guest) {
                progress("set the clock of \(name), which was \(abs(offset)) s \(offset > 0 ? "behind" : "ahead")")
            }
            outcome = try Provisioner(session: session, guest: guest, progress: progress)
                .provision(bundle: bundle, config: config, tls: config.tlsPort == nil ? [] : EngineTLS.serverFiles(files))
            try agent.start(uri: hypervisor.connection.uri)
            try waitForEngine(name, files: files, timeout: engineTimeout)
        }
        return Started(alreadyRunning: alreadyRunning, resumed: resumed, sshReadyUptime: uptime,
                       installedEngine: outcome?.installed == true ? outcome?.installedVersion : nil,
                       settingsChanged: outcome?.settingsChanged ?? false, dockerSocket: files.dockerSocket.path)
    }

    /// The forwards the running agent reports; the config's manual ones when it does not run.
    public func forwards(_ name: String) throws(MachineError) -> [ForwardStatus] {
        let config = try store.config(name)
        let files = store.files(name)
        if AgentProcess(name: name, files: files).runningPid() != nil, let statuses = PortForwards.readStatus(files.portsStatus) {
            return statuses
        }
        return config.ports.map {
            ForwardStatus(forward: PortForward(kind: .manual, proto: $0.proto, hostAddress: config.publishAddress, hostPort: $0.hostPort, guestPort: $0.guestPort),
                          state: "not forwarded: \(name) is not up")
        }
    }

    /// Guards host paths against symlinks in the folders shared with any machine: a guest
    /// can plant one in its shares, and one machine's shares may be another's too.
    public func sharesWalker() -> HostPathWalker {
        HostPathWalker(shares: store.all().flatMap { (try? $0.config.get().mounts.map(\.hostPath)) ?? [] })
    }

    /// Whether the host agent runs, and its pid.
    public func agentPid(_ name: String) -> Int32? {
        AgentProcess(name: name, files: store.files(name)).runningPid()
    }

    /// Returns true if the guest shut down cleanly, false if it had to be stopped hard.
    @discardableResult
    public func stop(_ name: String, force: Bool, timeout: Double = 60) throws(MachineError) -> Bool {
        _ = try store.config(name)
        let lock = try MachineLock(files: store.files(name), name: name)
        defer { withExtendedLifetime(lock) {} }
        // The agent first, so it does not try to reconnect to a guest going away.
        AgentProcess(name: name, files: store.files(name)).stop()
        if try hypervisor.hasSavedState(name) {
            if force {
                try hypervisor.discardSavedState(name)
                return false
            }
            // Its memory holds writes the data disk has not seen: a clean stop runs it first.
            progress("restoring \(name) from its saved state to shut it down cleanly")
            try hypervisor.restore(name)
        }
        let clean = try hypervisor.stop(name, force: force, timeout: timeout)
        // Each ends with its QEMU; one QEMU never connected to would wait for good.
        UserVirtiofsd.stopAll(pidsFile: store.files(name).virtiofsdPids)
        return clean
    }

    /// Removes what this host has of a machine whose remote libvirt host cannot be reached
    /// (`rm --force`): its agent and its folder. Its domain and volumes stay there; the
    /// returned line says how to remove them once the host answers again.
    public static func forgetUnreachable(_ name: String, config: MachineConfig, paths: Paths) throws(MachineError) -> String {
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

    public func remove(_ name: String, force: Bool) throws(MachineError) {
        try MachineName.validate(name)
        let known = FileManager.default.fileExists(atPath: store.files(name).folder.path)
        let defined = try hypervisor.domain(name) != nil
        guard known || defined else {
            throw MachineError("no machine named \"\(name)\"", hint: "see `machine ls`", kind: .notFound)
        }
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
            AgentProcess.stopStrays(name: name, paths: paths)
        }
        try hypervisor.undefine(name)
        if known { UserVirtiofsd.stopAll(pidsFile: store.files(name).virtiofsdPids) }
        try remoteVolumes(name)?.removeOwn()
        try store.remove(name)
    }
}
