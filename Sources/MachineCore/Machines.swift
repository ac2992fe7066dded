import Foundation
import Virt

/// The machine verbs, as the command line uses them: every one that changes a machine takes
/// its lock first; states come from libvirt.
public final class Machines {
    public let store: MachineStore
    public let hypervisor: Hypervisor
    public let paths: Paths
    /// Where progress lines go (stderr for the CLI).
    public var progress: (String) -> Void = { _ in }

    public init(paths: Paths, uri: String) throws(MachineError) {
        self.paths = paths
        store = MachineStore(paths: paths)
        hypervisor = try Hypervisor(uri: uri, store: store)
    }

    public func create(_ config: MachineConfig) throws(MachineError) {
        // A share type this host or connection cannot serve is refused now, not at boot.
        _ = try Shares.devices(config.mounts, type: config.mountType, systemDaemon: hypervisor.isSystemDaemon)
        _ = try store.create(config)
    }

    public struct Started: Sendable {
        public let alreadyRunning: Bool
        public let sshReadyUptime: Double?
        /// The engine version installed by this start, if it installed one.
        public let installedEngine: String?
        public let settingsChanged: Bool
        public let dockerSocket: String
    }

    /// Boots the machine if it is stopped, provisions the engine (installing the bundle only
    /// when the guest has another version, applying the engine settings), starts the host
    /// agent and waits until the engine answers `/_ping` through the forwarded socket. On a
    /// machine that is already up this checks and changes nothing.
    public func start(_ name: String, quietBuild: Bool = false, engineTimeout: Double = 180) throws(MachineError) -> Started {
        let files = store.files(name)
        let config = try store.config(name)
        let lock = try MachineLock(files: files, name: name)
        defer { withExtendedLifetime(lock) {} }
        var uptime: Double?
        let alreadyRunning = try hypervisor.state(name) == .running
        if !alreadyRunning {
            uptime = try boot(config, files: files, quietBuild: quietBuild)
        }
        let guest = GuestSSH(name: name, port: config.sshPort, files: files)
        let agent = AgentProcess(name: name, files: files)
        var outcome: Provisioner.Outcome?
        if !alreadyRunning || agent.runningPid() == nil || !LocalSocket.enginePing(files.dockerSocket.path, timeout: 2) {
            let bundle = try Builder(recipes: try Recipes.locate(), paths: paths).latestEngineBundle(quiet: quietBuild)
            let session = try guest.connect()
            outcome = try Provisioner(session: session, guest: guest, progress: progress).provision(bundle: bundle, settings: config.engine)
            try agent.start()
            try waitForEngine(name, files: files, timeout: engineTimeout)
        }
        return Started(alreadyRunning: alreadyRunning, sshReadyUptime: uptime,
                       installedEngine: outcome?.installed == true ? outcome?.installedVersion : nil,
                       settingsChanged: outcome?.settingsChanged ?? false, dockerSocket: files.dockerSocket.path)
    }

    /// Defines and boots the domain, waits for sshd and pins the host key.
    private func boot(_ config: MachineConfig, files: MachineFiles, quietBuild: Bool) throws(MachineError) -> Double {
        let name = config.name
        let image = config.iso == nil
            ? try Builder(recipes: try Recipes.locate(), paths: paths).latestImage(quiet: quietBuild)
            : nil
        try store.checkDataDisk(files)
        try Shares.verifyBeforeBoot(config.mounts, machine: name)
        let shares = try Shares.devices(config.mounts, type: config.mountType, systemDaemon: hypervisor.isSystemDaemon)
        try store.writeSeed(config, files: files, shares: shares, hidden: Shares.hiddenGuestPaths(config.mounts, machineHome: paths.home.path))
        let (accelerator, notice) = try AcceleratorProbe.choose(config.accel, verdictFile: paths.kvmFailedVerdict)
        if let notice { progress(notice) }
        // The console log of this boot only, so the waits below never read an old boot.
        try? FileManager.default.removeItem(at: files.consoleLog)
        // The agent's split session is made anew at each boot (QEMU makes the port's socket, the
        // input port is chosen now); stale ones would send the agent where nobody serves.
        try? FileManager.default.removeItem(at: files.guestSSHSocket)
        try? FileManager.default.removeItem(at: files.guestSSHInputPort)
        var agentInputPort: Int?
        if image?.servesSSHPort == true {
            let port = try MachineStore.freeLoopbackPort()
            try AtomicFile.write(Data("\(port)\n".utf8), to: files.guestSSHInputPort, mode: 0o600)
            agentInputPort = port
        }
        progress("starting \(name) (\(accelerator.rawValue), \(config.cpus) CPUs, \(config.memoryMiB) MiB)")
        try hypervisor.start(hypervisor.definition(config: config, files: files, image: image, accelerator: accelerator, shares: shares,
                                                   agentInputPort: agentInputPort), name: name)
        let hypervisor = self.hypervisor
        let uptime = try BootWatcher.waitForSSH(files: files, name: name) {
            (try? hypervisor.state(name)) == .running
        }
        _ = try BootWatcher.pinHostKey(files: files, config: config)
        return uptime
    }

    private func waitForEngine(_ name: String, files: MachineFiles, timeout: Double) throws(MachineError) {
        let started = Date()
        var nextReport = 5.0
        progress("waiting for the engine")
        while !LocalSocket.enginePing(files.dockerSocket.path) {
            let waited = Date().timeIntervalSince(started)
            if waited > timeout {
                throw MachineError("the engine in \(name) did not answer within \(Int(timeout)) s",
                                   hint: "see `machine ssh \(name) -- tail /var/log/docker.log` and \(files.agentLog.path)")
            }
            if waited >= nextReport {
                progress("still waiting for the engine (\(Int(waited)) s)")
                nextReport += 5
            }
            usleep(100_000)
        }
    }

    /// Changes the engine settings kept in the config; the next start applies them.
    public func updateEngineSettings(_ name: String, _ settings: EngineSettings) throws(MachineError) {
        let files = store.files(name)
        var config = try store.config(name)
        guard config.engine != settings else { return }
        let lock = try MachineLock(files: files, name: name)
        defer { withExtendedLifetime(lock) {} }
        config.engine = settings
        try AtomicFile.write(config.encoded(), to: files.config, mode: 0o600)
    }

    /// Changes the machine's shares, kept in its config; they take effect at its next boot.
    /// Returns true if anything changed.
    @discardableResult
    public func updateShares(_ name: String, _ change: (inout MachineConfig) throws(MachineError) -> Void) throws(MachineError) -> Bool {
        let files = store.files(name)
        _ = try store.config(name)
        let lock = try MachineLock(files: files, name: name)
        defer { withExtendedLifetime(lock) {} }
        var config = try store.config(name)
        let before = config
        try change(&config)
        guard config != before else { return false }
        _ = try Shares.devices(config.mounts, type: config.mountType, systemDaemon: hypervisor.isSystemDaemon)
        try AtomicFile.write(config.encoded(), to: files.config, mode: 0o600)
        return true
    }

    /// Changes the machine's config under its lock, then tells a running agent to reload it.
    public func updateForwarding(_ name: String, _ change: (inout MachineConfig) throws(MachineError) -> Void) throws(MachineError) {
        let files = store.files(name)
        _ = try store.config(name)
        let lock = try MachineLock(files: files, name: name)
        defer { withExtendedLifetime(lock) {} }
        var config = try store.config(name)
        try change(&config)
        try AtomicFile.write(config.encoded(), to: files.config, mode: 0o600)
        AgentProcess(name: name, files: files).reload()
    }

    /// The forwards the running agent reports; the config's manual ones when it does not run.
    public func forwards(_ name: String) throws(MachineError) -> [ForwardStatus] {
        let config = try store.config(name)
        let files = store.files(name)
        if AgentProcess(name: name, files: files).runningPid() != nil, let statuses = PortForwards.readStatus(files.portsStatus) {
            return statuses
        }
        return config.ports.map {
            ForwardStatus(forward: PortForward(kind: .manual, hostAddress: config.publishAddress, hostPort: $0.hostPort, guestPort: $0.guestPort),
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
        return try hypervisor.stop(name, force: force, timeout: timeout)
    }

    public func remove(_ name: String, force: Bool) throws(MachineError) {
        try MachineName.validate(name)
        let known = FileManager.default.fileExists(atPath: store.files(name).folder.path)
        let defined = try hypervisor.domain(name) != nil
        guard known || defined else {
            throw MachineError("no machine named \"\(name)\"", hint: "see `machine ls`")
        }
        let lock = known ? try MachineLock(files: store.files(name), name: name) : nil
        defer { withExtendedLifetime(lock) {} }
        if try hypervisor.state(name) != .stopped && !force {
            throw MachineError("\(name) is running", hint: "stop it first with `machine stop \(name)`, or use `machine rm --force \(name)`")
        }
        if known { AgentProcess(name: name, files: store.files(name)).stop() }
        try hypervisor.undefine(name)
        try store.remove(name)
    }

    /// Everything `inspect` and `ls` show about one machine.
    public struct Info: Codable, Sendable {
        public struct SSH: Codable, Sendable {
            public let host: String
            public let port: Int
            public let user: String
            public let identityFile: String
            public let knownHostsFile: String
        }
        public struct SharedFolderInfo: Codable, Sendable {
            public let hostPath: String
            public let guestPath: String
            public let readOnly: Bool
            /// virtiofs or 9p, as this connection serves it.
            public let type: String
        }
        public let name: String
        public let state: String
        public let domain: String
        public let config: MachineConfig
        public let folder: String
        public let consoleLog: String
        public let dataDisk: String
        public let ssh: SSH
        public let shares: [SharedFolderInfo]
    }

    public func info(_ name: String) throws(MachineError) -> Info {
        let config = try store.config(name)
        let files = store.files(name)
        return Info(
            name: name, state: try hypervisor.state(name).rawValue, domain: MachineName.domainName(name), config: config,
            folder: files.folder.path, consoleLog: files.consoleLog.path, dataDisk: files.dataDisk.path,
            ssh: .init(host: "127.0.0.1", port: config.sshPort, user: "root", identityFile: files.privateKey.path,
                       knownHostsFile: files.knownHosts.path),
            shares: ((try? Shares.devices(config.mounts, type: config.mountType, systemDaemon: hypervisor.isSystemDaemon)) ?? []).map {
                .init(hostPath: $0.share.hostPath, guestPath: $0.share.guestPath, readOnly: $0.share.readOnly, type: $0.typeName)
            })
    }
}
