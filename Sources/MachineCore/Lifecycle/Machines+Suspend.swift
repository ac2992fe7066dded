import Foundation
import HostOS

/// `machine suspend` and resuming: the guest's memory saved to disk by libvirt (managed save)
/// and restored by the next start, with its engine, containers and their ports as they were.
extension Machines {
    /// What a boot is made of. A saved state holds the devices and memory of the boot that
    /// made it, so it is restored only while a boot now would be made of the same.
    struct BootRecord: Codable, Equatable {
        var image: String?
        /// The engine's disk; none for a machine that boots an ISO (its engine is installed).
        var engine: String?
        /// The engine bundle's folder, for every machine (absent in records of older machines).
        var bundle: String?
        var cpus: Int
        var memoryMiB: Int
        var mounts: [Share]
        var mountType: ShareType
    }

    func record(_ config: MachineConfig, image: GuestImage?, engine: EngineBundle) -> BootRecord {
        BootRecord(image: image?.folder.path, engine: image == nil ? nil : engine.disk?.path, bundle: engine.folder.path,
                   cpus: config.cpus, memoryMiB: config.memoryMiB, mounts: config.mounts, mountType: config.mountType)
    }

    /// What the machine's last boot was made of, as `boot` wrote it.
    func lastBootRecord(_ files: MachineFiles) -> BootRecord? {
        guard let data = try? Data(contentsOf: files.bootRecord) else { return nil }
        return try? JSONDecoder().decode(BootRecord.self, from: data)
    }

    /// Saves the running machine to disk and stops it; `start` (or `resume`) brings it back.
    public func suspend(_ name: String) throws(MachineError) {
        _ = try store.config(name)
        let lock = try MachineLock(files: store.files(name), name: name)
        defer { withExtendedLifetime(lock) {} }
        let status = try hypervisor.status(name)
        guard status.state == .running || status.state == .paused else {
            throw MachineError("\(name) is not running (\(status.state.rawValue))", hint: "`machine up \(name)` starts it")
        }
        // Checked before anything stops: QEMU refuses to save a guest with a mounted 9p share
        // (a migration blocker) or any vhost-user-fs device, and says so only after the agent
        // would be gone.
        if let shares = lastBootRecord(store.files(name))?.mounts, !shares.isEmpty {
            throw MachineError("cannot suspend \(name): QEMU cannot save a machine with shared folders (\(shares.map(\.hostPath).joined(separator: ", ")))",
                               hint: "`machine stop\(MachineName.commandSuffix(name))` keeps its containers and volumes on its disk; machines made with --no-mounts can be suspended")
        }
        // The agent first: its session ends with the guest, and the next start makes a new one.
        AgentProcess(name: name, files: store.files(name)).stop()
        progress("saving \(name)'s memory to disk")
        try hypervisor.save(name)
    }

    /// Whether a saved state can be restored: it exists, and the boot it came from was made of
    /// the image, engine and shape a boot would use now. One that cannot is thrown away, with
    /// a line saying why.
    func restorableSavedState(_ config: MachineConfig, files: MachineFiles, quietBuild: Bool,
                              engine: () throws(MachineError) -> EngineBundle) throws(MachineError) -> Bool {
        guard try hypervisor.hasSavedState(config.name) else { return false }
        let now = record(config, image: try guestImage(for: config, quiet: quietBuild), engine: try engine())
        let saved = lastBootRecord(files)
        if saved == now { return true }
        progress("the saved state of \(config.name) was made with another image, engine or shape; booting it afresh (its containers were not shut down cleanly)")
        try hypervisor.discardSavedState(config.name)
        return false
    }

    /// A restored guest runs at once, but its network takes a moment to answer again.
    func waitForRestoredSSH(_ guest: GuestSSH, timeout: Double = 30) throws(MachineError) {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            do {
                _ = try guest.connect(timeout: 5)
                return
            } catch {
                if Date() > deadline { throw error }
                usleep(200_000)
            }
        }
    }
}
