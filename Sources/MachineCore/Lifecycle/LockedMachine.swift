import FoundationEssentials
import HostOS

/// The copy of a machine's config that machine keeps where a guest cannot write (the domain's
/// metadata in libvirt's store), with the config it replaced.
public struct RecordedConfig: Sendable, Equatable {
    public var config: Data
    public var previous: Data?

    public init(config: Data, previous: Data?) {
        self.config = config
        self.previous = previous
    }
}

/// Where that copy lives: the hypervisor, or a test's memory.
protocol ConfigRecorder {
    func recordedConfig(_ name: String) throws(MachineError) -> RecordedConfig?
    func record(config: MachineConfig, previous: MachineConfig?) throws(MachineError)
}

extension Hypervisor: ConfigRecorder {}

/// A machine's config in its two copies: config.json, which anything that can write the
/// machine's folder can change (a guest with a read-write share of it, a hand edit), and the
/// recorded one. A config is trusted as far as machine wrote it.
struct ConfigCopies {
    let store: MachineStore
    let recorder: any ConfigRecorder
    let foreignChange: Machines.ForeignConfigChange
    let progress: (String) -> Void

    /// config.json when it is what machine last wrote (or when nothing was recorded yet: a
    /// machine never booted, or made by an older machine); otherwise refused, taken or put
    /// back as `foreignChange` says. A config.json equal to the config the recorded one
    /// replaced is a save cut short between its writes, finished here.
    func trusted(_ name: String) throws(MachineError) -> MachineConfig {
        let files = store.files(name)
        let config = try store.config(name)
        guard let recordedCopy = try recorder.recordedConfig(name) else { return config }
        let recorded: MachineConfig
        do {
            recorded = try MachineConfig.decode(recordedCopy.config)
        } catch {
            throw MachineError("the copy of \(name)'s config kept in its libvirt domain cannot be read (\(error))",
                               hint: "`machine start --accept-config \(name)` takes \(files.config.path) as it is")
        }
        guard recorded != config else { return config }
        if let previous = recordedCopy.previous.flatMap({ try? MachineConfig.decode($0) }), previous == config {
            try AtomicFile.save(recorded.encoded(), to: files.config, mode: 0o600)
            progress("finished saving the config of \(name), which an earlier command left half-saved: " + recorded.changes(from: config).joined(separator: "; "))
            return recorded
        }
        let changes = config.changes(from: recorded)
        switch foreignChange {
        case .refuse:
            let command = MachineName.commandSuffix(name)
            throw MachineError(
                "\(files.config.path) was changed, and not by machine: " + changes.joined(separator: "; "),
                hint: "anything that can write there can: a guest with a read-write share of that folder, or an edit by hand."
                    + " If you made this change, `machine start --accept-config\(command)` takes it;"
                    + " `machine start --restore-config\(command)` puts back what machine last wrote",
                kind: .configChanged)
        case .accept:
            try recorder.record(config: config, previous: recorded)
            progress("took the config of \(name) as it is now: " + changes.joined(separator: "; "))
            return config
        case .restore:
            try AtomicFile.save(recorded.encoded(), to: files.config, mode: 0o600)
            progress("put back the config of \(name) that machine last wrote, undoing: " + changes.joined(separator: "; "))
            return recorded
        }
    }

    /// Writes both copies: the recorded one first (with the config it replaces), then
    /// config.json. A failure between them leaves config.json at `old`, which `trusted` then
    /// recognises and completes, instead of refusing machine's own change as foreign.
    func save(_ config: MachineConfig, replacing old: MachineConfig) throws(MachineError) {
        try recorder.record(config: config, previous: old)
        try AtomicFile.save(config.encoded(), to: store.files(config.name).config, mode: 0o600)
    }
}

/// A machine held under its lock: its files, its trusted config, and the only way to change
/// that config. Only `Machines.lock` makes one; the lock is released when it goes.
final class LockedMachine {
    let name: String
    let files: MachineFiles
    private let lock: MachineLock
    private let copies: ConfigCopies
    private var trusted: MachineConfig?

    /// Takes the lock of machine `name`, which must exist (a missing one says so before any
    /// lock file is made).
    init(_ name: String, copies: ConfigCopies) throws(MachineError) {
        _ = try copies.store.config(name)
        self.name = name
        files = copies.store.files(name)
        lock = try MachineLock(files: files, name: name)
        self.copies = copies
    }

    /// The config machine trusts (`ConfigCopies.trusted`), read once under the lock. Verbs
    /// that do not act on the config (stop, suspend) never ask, so a foreign change to it
    /// does not keep a user from stopping a machine.
    func config() throws(MachineError) -> MachineConfig {
        if let trusted { return trusted }
        let config = try copies.trusted(name)
        trusted = config
        return config
    }

    /// Saves `config` to both copies if it differs from the trusted one; returns whether it did.
    @discardableResult
    func save(_ config: MachineConfig) throws(MachineError) -> Bool {
        let old = try self.config()
        guard config != old else { return false }
        try copies.save(config, replacing: old)
        trusted = config
        return true
    }

    /// Changes the config and saves it; returns whether anything changed.
    @discardableResult
    func change(_ body: (inout MachineConfig) throws(MachineError) -> Void) throws(MachineError) -> Bool {
        var config = try self.config()
        try body(&config)
        return try save(config)
    }
}
