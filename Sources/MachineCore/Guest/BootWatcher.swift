import FoundationEssentials
import HostOS
import SSH
import Virt

/// Watches a guest boot on its console: waits for sshd, tells why a boot went nowhere (with
/// libvirt's state and QEMU's own words), and pins the guest's SSH host key.
public enum BootWatcher {
    /// Why a boot did not reach sshd.
    public enum Failure: Error {
        /// The guest left the running state: paused, crashed, stopped.
        case stopped(name: String, status: Domain.Status, qemuError: String?)
        /// Nothing at all on the console: under KVM a guest that never ran.
        case silent(name: String, seconds: Int)
        case timedOut(name: String, seconds: Int)
        case other(MachineError)

        /// A failure of the guest itself (not of a user's pause or of our own files), the kind a
        /// broken KVM causes.
        public var isGuestFailure: Bool {
            switch self {
            case .stopped(_, let status, _): return !(status.state == .paused && status.reason == "user")
            case .silent: return true
            case .timedOut, .other: return false
            }
        }

        /// One line: what happened, with QEMU's words when it said something.
        public var reason: String {
            switch self {
            case .stopped(_, let status, let qemuError):
                return "the guest \(BootWatcher.describe(status))" + (qemuError.map { "; QEMU said: \($0)" } ?? "")
            case .silent(_, let seconds): return "the guest printed nothing on its console for \(seconds) s"
            case .timedOut(_, let seconds): return "the guest did not finish booting within \(seconds) s"
            case .other(let error): return error.message
            }
        }

        public var machineError: MachineError {
            switch self {
            case .stopped(let name, let status, _):
                let hint = status.state == .paused && status.reason == "user"
                    ? "`machine start \(name)` resumes it"
                    : "see `machine logs --qemu \(name)` for QEMU's log; `machine start \(name)` boots it again"
                return MachineError("\(name) did not boot: \(reason)", hint: hint)
            case .silent(let name, _), .timedOut(let name, _):
                return MachineError("\(name) did not boot: \(reason)",
                                    hint: "see `machine logs \(name)` and `machine logs --qemu \(name)`")
            case .other(let error): return error
            }
        }
    }

    /// A state as a user reads it: "was paused (unknown)", "crashed (panicked)".
    public static func describe(_ status: Domain.Status) -> String {
        switch status.state {
        case .paused: return "was paused (\(status.reason))"
        case .stopped: return "stopped (\(status.reason))"
        case .crashed: return "crashed (\(status.reason))"
        case .shuttingDown: return "was shutting down"
        case .suspended: return "was suspended to memory by its guest"
        case .running: return "is running"
        case .unknown: return "is in a state libvirt does not name"
        }
    }

    /// Waits until the console of the current boot says sshd is ready; returns the uptime.
    /// `status` is asked between looks; a guest that leaves the running state ends the wait, and
    /// so does a console still empty after `silentLimit` seconds.
    public static func waitForSSH(files: MachineFiles, name: String, timeout: Double = 120, silentLimit: Double? = nil,
                                  status: () -> (Domain.Status, qemuError: String?)) throws(Failure) -> Double {
        let started = Date()
        while Date().timeIntervalSince(started) < timeout {
            let text = ConsoleLog.read(files.consoleLog)
            if let uptime = ConsoleLog.uptime(ofStep: GuestContract.sshReadyStep, in: text) { return uptime }
            let (state, qemuError) = status()
            if state.state != .running {
                throw .stopped(name: name, status: state, qemuError: qemuError)
            }
            if let silentLimit, text.isEmpty, Date().timeIntervalSince(started) > silentLimit {
                throw .silent(name: name, seconds: Int(silentLimit))
            }
            Threads.sleep(0.1)
        }
        throw .timedOut(name: name, seconds: Int(timeout))
    }

    /// Pins the host key the console shows on first boot; on later boots, refuses a
    /// different one.
    public static func pinHostKey(files: MachineFiles, config: MachineConfig) throws(MachineError) -> HostKey {
        let text = ConsoleLog.read(files.consoleLog)
        guard let key = ConsoleLog.hostKey(in: text) else {
            throw MachineError("the guest printed no SSH host key on its console", hint: "see `machine logs \(config.name)`")
        }
        let line = "[127.0.0.1]:\(config.sshPort) \(key.line)\n"
        if let pinned = try? String(contentsOf: files.knownHosts, encoding: .utf8),
           let pinnedKey = pinned.split(separator: " ", maxSplits: 1).last.flatMap({ HostKey(line: String($0)) }) {
            guard pinnedKey == key else {
                throw MachineError(
                    "the machine \(config.name) now has a different SSH host key than the one pinned at its first boot",
                    hint: "if its data disk was replaced on purpose, remove \(files.knownHosts.path) and start it again; otherwise something else may be answering for it")
            }
            if pinned != line { try AtomicFile.save(Data(line.utf8), to: files.knownHosts, mode: 0o600) }
            return key
        }
        try AtomicFile.save(Data(line.utf8), to: files.knownHosts, mode: 0o600)
        return key
    }
}
