import FoundationEssentials
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
        runtime.guest(try store.config(name))
    }

    /// The same, for a verb that goes in by itself (`machine ssh`, `cp`): a sleeping machine is
    /// woken first, as a docker client would wake it through the agent.
    public func awakeGuest(_ name: String) throws(MachineError) -> GuestSSH {
        let guest = try guest(name)
        try wakeIfAsleep(name)
        return guest
    }

    /// Wakes the machine if its agent put it to sleep (IdleSleep), for a verb that reaches the
    /// guest by itself (`ssh`, `cp`) rather than through the agent, which wakes it on its own.
    /// Returns true if it was asleep.
    @discardableResult
    public func wakeIfAsleep(_ name: String) throws(MachineError) -> Bool {
        let files = store.files(name)
        // No mark, no question to libvirt.
        guard IdleSleep.markedSince(files) != nil, IdleSleep.isAsleep(try hypervisor.status(name), files: files) else { return false }
        try hypervisor.resume(name)
        IdleSleep.clearMark(files)
        return true
    }

    public func create(_ config: MachineConfig) throws(MachineError) {
        try roster.create(config)
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
        try lifecycle.start(try lock(name), quietBuild: quietBuild, engineTimeout: engineTimeout, provision: provision)
    }

    /// Saves the running machine to disk and stops it; `start` (or `resume`) brings it back.
    public func suspend(_ name: String) throws(MachineError) {
        try lifecycle.suspend(try lock(name))
    }

    /// Takes the lock of machine `name` (which must exist), for a verb to act under.
    func lock(_ name: String) throws(MachineError) -> LockedMachine {
        try LockedMachine(name, copies: configCopies)
    }

    /// The two copies of every config of this home, and what to do when they differ.
    var configCopies: ConfigCopies {
        ConfigCopies(store: store, recorder: hypervisor, foreignChange: foreignConfigChange, progress: progress)
    }

    /// The builds a boot uses: held, or the cache's latest.
    var buildSelection: BuildSelection {
        BuildSelection(paths: paths, progress: progress)
    }

    /// libvirt, the guests and their agents, as the verbs act on them.
    var runtime: LibvirtRuntime {
        LibvirtRuntime(store: store, hypervisor: hypervisor, paths: paths, remote: remote, progress: progress)
    }

    var roster: MachineRoster { MachineRoster(runtime: runtime) }

    var tls: MachineTLS { MachineTLS(lifecycle: lifecycle, runtime: runtime) }

    var lifecycle: MachineLifecycle {
        MachineLifecycle(runtime: runtime, builds: buildSelection, progress: progress)
    }

    public typealias Info = MachineInfo

    /// What `status`, `ls` and `inspect` show.
    public func info(_ name: String) throws(MachineError) -> Info {
        try runtime.info(name)
    }

    /// The forwards the running agent reports; the config's manual ones when it does not run.
    public func forwards(_ name: String) throws(MachineError) -> [ForwardStatus] {
        PortForwards.statuses(try store.config(name), files: store.files(name))
    }

    /// The machine's platforms, checked in the guest while it runs (`GuestPlatforms.check`):
    /// what `inspect` reports. A machine that sleeps is not woken for it.
    public func checkPlatforms(_ name: String, state: String) -> PlatformsInfo {
        let setting = (try? config(name))?.platforms
        guard state == "running" else { return PlatformsInfo(setting: setting, emulation: "not checked: the machine is \(state)") }
        do {
            return GuestPlatforms(guest: try guest(name)).check(setting: setting)
        } catch {
            return PlatformsInfo(setting: setting, emulation: "not checked: \(error.message)")
        }
    }

    /// The UDP forwards of this machine's QEMU; nil for one on a remote libvirt host.
    public func qemuForwards(_ name: String) -> QEMUForwards? {
        remote == nil ? QEMUForwards(uri: uri, paths: paths, name: name) : nil
    }

    /// A watch on the domain `name` runs in now, on the daemon it lives on.
    public func domainWatch(_ name: String) -> DomainWatch {
        DomainWatch(uri: uri, paths: paths, name: name)
    }

    /// The data disk's usage: the agent's recent measurement, else one made now over SSH (nil
    /// when the guest does not answer), for `up`, which may come before the agent's first.
    public func dataDiskUsage(_ name: String) -> DataDiskUsage? {
        let files = store.files(name)
        if let recent = DataDiskUsage.recent(at: files.dataDiskUsage) { return recent }
        guard let session = try? guest(name).connect(timeout: 10), let usage = (try? DataDiskUsage.measure(over: session)) ?? nil else { return nil }
        usage.save(to: files.dataDiskUsage)
        return usage
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
        try lifecycle.stop(try lock(name), force: force, timeout: timeout)
    }

    /// Removes what this host has of a machine whose remote libvirt host cannot be reached
    /// (`rm --force`); the returned line says how to remove what stays there.
    public static func forgetUnreachable(_ name: String, config: MachineConfig, paths: Paths) throws(MachineError) -> String {
        try MachineRoster.forgetUnreachable(name, config: config, paths: paths)
    }

    public func remove(_ name: String, force: Bool) throws(MachineError) {
        try roster.remove(name, force: force)
    }
}
