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

    /// Boots the machine if it is not running (a paused, crashed or half-stopped QEMU left by
    /// an earlier boot is stopped first; one a user paused is resumed instead), provisions the
    /// engine (installing the bundle only when the guest has another version, applying the
    /// engine settings), starts the host agent and waits until the engine answers `/_ping`
    /// through the forwarded socket. On a machine that is already up this checks and changes
    /// nothing.
    public func start(_ name: String, quietBuild: Bool = false, engineTimeout: Double = 180) throws(MachineError) -> Started {
        let files = store.files(name)
        _ = try store.config(name)  // a machine that does not exist says so before any lock file is made
        let lock = try MachineLock(files: files, name: name)
        defer { withExtendedLifetime(lock) {} }
        let config = try trustedConfig(name)
        var uptime: Double?
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
        } else if !alreadyRunning {
            if status.state != .stopped {
                progress("\(name) was \(BootWatcher.describe(status)); stopping what is left of it and booting it again")
            }
            // An agent serves one boot: one left from an earlier boot (QEMU killed or crashed,
            // the host asleep) would keep reaching for that boot's ports.
            if agent.stop() { progress("stopped the host agent of \(name)'s earlier boot") }
            uptime = try boot(config, files: files, quietBuild: quietBuild)
        }
        let guest = GuestSSH(name: name, port: config.sshPort, files: files)
        var outcome: Provisioner.Outcome?
        if !alreadyRunning || agent.runningPid() == nil || !LocalSocket.enginePing(files.dockerSocket.path, timeout: 2) {
            let bundle = try Builder(recipes: try Recipes.locate(), paths: paths).latestEngineBundle(quiet: quietBuild)
            let session = try guest.connect()
            // A guest that was paused (or a host that slept) has a clock that stopped with it.
            if let offset = try GuestClock.set(over: session, guest: guest) {
                progress("set the clock of \(name), which was \(abs(offset)) s \(offset > 0 ? "behind" : "ahead")")
            }
            outcome = try Provisioner(session: session, guest: guest, progress: progress).provision(bundle: bundle, settings: config.engine)
            try agent.start(uri: hypervisor.connection.uri)
            try waitForEngine(name, files: files, timeout: engineTimeout)
        }
        return Started(alreadyRunning: alreadyRunning, sshReadyUptime: uptime,
                       installedEngine: outcome?.installed == true ? outcome?.installedVersion : nil,
                       settingsChanged: outcome?.settingsChanged ?? false, dockerSocket: files.dockerSocket.path)
    }

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
            let command = name == MachineName.default ? "" : " " + name
            throw MachineError(
                "\(files.config.path) was changed, and not by machine: " + changes.joined(separator: "; "),
                hint: "anything that can write there can: a guest with a read-write share of that folder, or an edit by hand."
                    + " If you made this change, `machine start --accept-config\(command)` takes it;"
                    + " `machine start --restore-config\(command)` puts back what machine last wrote")
        case .accept:
            try hypervisor.record(config: config)
            progress("took the config of \(name) as it is now: " + changes.joined(separator: "; "))
            return config
        case .restore:
            try AtomicFile.write(recorded.encoded(), to: files.config, mode: 0o600)
            progress("put back the config of \(name) that machine last wrote, undoing: " + changes.joined(separator: "; "))
            return recorded
        }
    }

    /// Reads the machine's state for the boot watcher, with QEMU's last error line.
    private func statusReader(_ name: String) -> () -> (Domain.Status, qemuError: String?) {
        let hypervisor = self.hypervisor
        return {
            let status = (try? hypervisor.status(name)) ?? Domain.Status(state: .unknown, reason: "libvirt did not answer")
            return (status, status.state == .running ? nil : QEMULog.lastError(at: hypervisor.qemuLog(name)))
        }
    }

    /// Defines and boots the domain, waits for sshd and pins the host key. A guest that KVM
    /// (chosen by `auto`) stops, crashes or leaves silent is booted again under TCG, and TCG is
    /// remembered for this host boot.
    private func boot(_ config: MachineConfig, files: MachineFiles, quietBuild: Bool) throws(MachineError) -> Double {
        let name = config.name
        let image = config.iso == nil
            ? try Builder(recipes: try Recipes.locate(), paths: paths).latestImage(quiet: quietBuild)
            : nil
        try store.checkDataDisk(files)
        try Shares.verifyBeforeBoot(config.mounts, machine: name)
        let shares = try Shares.devices(config.mounts, type: config.mountType, systemDaemon: hypervisor.isSystemDaemon)
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
        try store.writeSeed(config, files: files, shares: shares, hidden: Shares.hiddenGuestPaths(config.mounts, machineHome: paths.home.path),
                            agentInputPort: agentInputPort)
        let (accelerator, notice) = try AcceleratorProbe.choose(config.accel, verdictFile: paths.kvmFailedVerdict, kernel: image?.kernel)
        if let notice {
            progress(notice)
            if accelerator == .tcg && hypervisor.isSystemDaemon && HostCheck.systemLibvirtdSeesKVM() == true {
                progress("note: libvirtd can open /dev/kvm, which does not run guests here, so it re-probes QEMU at every start (tens of seconds); `scripts/host-setup.sh` restarts it without /dev/kvm")
            }
        }
        do {
            return try bootOnce(config, files: files, image: image, shares: shares, agentInputPort: agentInputPort, accelerator: accelerator)
        } catch let failure where accelerator == .kvm && config.accel == "auto" && failure.isGuestFailure {
            progress("KVM could not run \(name): \(failure.reason); booting it again with QEMU's TCG emulation (slower), which this host uses from now on")
            AcceleratorProbe.rememberFailure(in: paths.kvmFailedVerdict)
            do {
                return try bootOnce(config, files: files, image: image, shares: shares, agentInputPort: agentInputPort, accelerator: .tcg)
            } catch {
                throw error.machineError
            }
        } catch {
            throw error.machineError
        }
    }

    private func bootOnce(_ config: MachineConfig, files: MachineFiles, image: GuestImage?, shares: [SharedFolder],
                          agentInputPort: Int?, accelerator: Accelerator) throws(BootWatcher.Failure) -> Double {
        let name = config.name
        do {
            // The console log of this boot only, so the waits below never read an old boot.
            try? FileManager.default.removeItem(at: files.consoleLog)
            progress("starting \(name) (\(accelerator.rawValue), \(config.cpus) CPUs, \(config.memoryMiB) MiB)")
            try hypervisor.start(hypervisor.definition(config: config, files: files, image: image, accelerator: accelerator, shares: shares,
                                                       agentInputPort: agentInputPort), name: name)
        } catch {
            throw .other(error)
        }
        let uptime = try BootWatcher.waitForSSH(files: files, name: name, silentLimit: accelerator == .kvm ? 15 : nil,
                                                status: statusReader(name))
        do {
            _ = try BootWatcher.pinHostKey(files: files, config: config)
        } catch {
            throw .other(error)
        }
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

    /// Changes a machine's config under its lock; returns true if anything changed.
    @discardableResult
    private func changeConfig(_ name: String, _ change: (inout MachineConfig) throws(MachineError) -> Void) throws(MachineError) -> Bool {
        let files = store.files(name)
        _ = try store.config(name)  // a machine that does not exist says so before any lock file is made
        let lock = try MachineLock(files: files, name: name)
        defer { withExtendedLifetime(lock) {} }
        var config = try trustedConfig(name)
        let before = config
        try change(&config)
        guard config != before else { return false }
        try AtomicFile.write(config.encoded(), to: files.config, mode: 0o600)
        try hypervisor.record(config: config)
        return true
    }

    /// Changes the engine settings kept in the config; the next start applies them.
    public func updateEngineSettings(_ name: String, _ settings: EngineSettings) throws(MachineError) {
        try changeConfig(name) { $0.engine = settings }
    }

    /// Changes the machine's shares, kept in its config; they take effect at its next boot.
    /// Returns true if anything changed.
    @discardableResult
    public func updateShares(_ name: String, _ change: (inout MachineConfig) throws(MachineError) -> Void) throws(MachineError) -> Bool {
        let systemDaemon = hypervisor.isSystemDaemon
        return try changeConfig(name) { (config: inout MachineConfig) throws(MachineError) in
            try change(&config)
            _ = try Shares.devices(config.mounts, type: config.mountType, systemDaemon: systemDaemon)
        }
    }

    /// Changes the machine's config under its lock, then tells a running agent to reload it.
    public func updateForwarding(_ name: String, _ change: (inout MachineConfig) throws(MachineError) -> Void) throws(MachineError) {
        try changeConfig(name, change)
        AgentProcess(name: name, files: store.files(name)).reload()
    }

    /// Changes how a machine is run (accelerator, CPUs, memory): kept in its config, applied at
    /// its next boot (the domain is defined anew at every boot). Returns true if anything changed.
    @discardableResult
    public func updateShape(_ name: String, accel: String?, cpus: Int?, memoryMiB: Int?) throws(MachineError) -> Bool {
        try changeConfig(name) { config in
            if let accel { config.accel = accel }
            if let cpus { config.cpus = cpus }
            if let memoryMiB { config.memoryMiB = memoryMiB }
        }
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
        let status = try hypervisor.status(name)
        if status.state != .stopped && !force {
            throw MachineError(status.state == .running ? "\(name) is running" : "\(name) \(BootWatcher.describe(status)) and still has a QEMU",
                               hint: "stop it first with `machine stop \(name)`, or use `machine rm --force \(name)`")
        }
        if known { AgentProcess(name: name, files: store.files(name)).stop() }
        try hypervisor.undefine(name)
        try store.remove(name)
    }
}
