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
        _ = try store.create(config)
    }

    public struct Started: Sendable {
        public let alreadyRunning: Bool
        public let sshReadyUptime: Double?
    }

    public func start(_ name: String, quietBuild: Bool = false) throws(MachineError) -> Started {
        let files = store.files(name)
        let config = try store.config(name)
        let lock = try MachineLock(files: files, name: name)
        defer { withExtendedLifetime(lock) {} }
        if try hypervisor.state(name) == .running {
            return Started(alreadyRunning: true, sshReadyUptime: nil)
        }
        let image = config.iso == nil
            ? try Builder(recipes: try Recipes.locate(), paths: paths).latestImage(quiet: quietBuild)
            : nil
        try store.checkDataDisk(files)
        let (accelerator, notice) = try AcceleratorProbe.choose(config.accel)
        if let notice { progress(notice) }
        // The console log of this boot only, so the waits below never read an old boot.
        try? FileManager.default.removeItem(at: files.consoleLog)
        progress("starting \(name) (\(accelerator.rawValue), \(config.cpus) CPUs, \(config.memoryMiB) MiB)")
        try hypervisor.start(hypervisor.definition(config: config, files: files, image: image, accelerator: accelerator), name: name)
        let hypervisor = self.hypervisor
        let uptime = try BootWatcher.waitForSSH(files: files, name: name) {
            (try? hypervisor.state(name)) == .running
        }
        _ = try BootWatcher.pinHostKey(files: files, config: config)
        return Started(alreadyRunning: false, sshReadyUptime: uptime)
    }

    /// Returns true if the guest shut down cleanly, false if it had to be stopped hard.
    @discardableResult
    public func stop(_ name: String, force: Bool, timeout: Double = 60) throws(MachineError) -> Bool {
        _ = try store.config(name)
        let lock = try MachineLock(files: store.files(name), name: name)
        defer { withExtendedLifetime(lock) {} }
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
        public let name: String
        public let state: String
        public let domain: String
        public let config: MachineConfig
        public let folder: String
        public let consoleLog: String
        public let dataDisk: String
        public let ssh: SSH
    }

    public func info(_ name: String) throws(MachineError) -> Info {
        let config = try store.config(name)
        let files = store.files(name)
        return Info(
            name: name, state: try hypervisor.state(name).rawValue, domain: MachineName.domainName(name), config: config,
            folder: files.folder.path, consoleLog: files.consoleLog.path, dataDisk: files.dataDisk.path,
            ssh: .init(host: "127.0.0.1", port: config.sshPort, user: "root", identityFile: files.privateKey.path,
                       knownHostsFile: files.knownHosts.path))
    }
}
