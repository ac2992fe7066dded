import FoundationEssentials
import HostOS
import Virt

/// A machine that sleeps when nobody uses it: the setting (`--idle-sleep`), the guest
/// commands the agent decides and prepares with, and the mark its agent leaves in the
/// machine's folder while the domain is paused for it (`status` says `sleeping`).
///
/// Sleep is a pause of the domain: QEMU runs no guest CPU, and the guest gave its page cache
/// back first (free page reporting returns it to the host). The agent keeps the engine socket
/// and every published TCP port open; the first client of either resumes the domain, in
/// about 20 ms, and is then served. A saved state (`suspend`) would also free QEMU's memory,
/// but costs a restore and every SSH session, and QEMU refuses it for a machine with shares.
public enum IdleSleep {
    /// Docker Desktop's Resource Saver waits 5 minutes too: a wake costs a client about 0.2 s,
    /// so a short wait costs little, while an idle TCG guest keeps a few percent of a host CPU.
    public static let defaultSeconds = 300

    /// "off" or "0" (never), "90" or "90s" (seconds), "15m", "1h".
    public static func parse(_ text: String) throws(MachineError) -> Int {
        let lowered = text.lowercased().trimmed()
        if ["off", "no", "never", "0"].contains(lowered) { return 0 }
        let units: [(suffix: String, seconds: Int)] = [("h", 3600), ("m", 60), ("s", 1)]
        var number = lowered
        var unit = 1
        if let match = units.first(where: { lowered.hasSuffix($0.suffix) }) {
            number = String(lowered.dropLast())
            unit = match.seconds
        }
        guard let value = Int(number), value >= 0, value <= 7 * 24 * 3600 / unit else {
            throw MachineError("--idle-sleep takes a time like 30s, 15m or 1h, or off; not \"\(text)\"", kind: .usage)
        }
        let seconds = value * unit
        guard seconds == 0 || seconds >= minimumSeconds else {
            throw MachineError("--idle-sleep must be at least \(minimumSeconds)s (or off)", kind: .usage)
        }
        return seconds
    }

    /// Shorter waits would put a guest to sleep between two commands of one script.
    public static let minimumSeconds = 3

    /// The setting in the words `parse` takes: "off", "45s", "15m", "1h".
    public static func describe(_ seconds: Int) -> String {
        if seconds <= 0 { return "off" }
        if seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }

    // MARK: The guest's side

    /// Prints the guest's CPU counters twice, a second apart (/proc/stat's `cpu` lines).
    public static let cpuCommand = "grep '^cpu' /proc/stat; sleep 1; grep '^cpu' /proc/stat"

    /// Above this share of one vCPU, the guest is working (a build, a container's job) and
    /// does not sleep. An idle engine under TCG measured under 1%.
    public static let busyShareOfOneCPU = 0.10

    /// The share of one vCPU the guest used between the two samples of `cpuCommand`'s output;
    /// nil when it is not that.
    public static func cpuShare(fromProcStat output: String) -> Double? {
        let totals = output.split(separator: "\n").filter { $0.hasPrefix("cpu ") }.map { line -> (busy: Double, all: Double) in
            let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
            // user nice system idle iowait irq softirq steal ...: idle and iowait are not work.
            let all = fields.prefix(8).reduce(0, +)
            let idle = fields.count > 4 ? fields[3] + fields[4] : all
            return (all - idle, all)
        }
        let cpus = output.split(separator: "\n").filter { $0.hasPrefix("cpu") && !$0.hasPrefix("cpu ") }.count / 2
        guard totals.count == 2, cpus > 0 else { return nil }
        let elapsedPerCPU = (totals[1].all - totals[0].all) / Double(cpus)
        guard elapsedPerCPU > 0 else { return nil }
        return (totals[1].busy - totals[0].busy) / elapsedPerCPU
    }

    /// Gives the guest's page cache back before it sleeps: written out, dropped, its free
    /// memory compacted so that free page reporting hands whole blocks to the host. The
    /// helpers the engine runs for each client (runc, docker-init for `docker version`, the
    /// shim and docker-proxy for `docker run -p`; 22 MiB, next to dockerd) are read back in:
    /// without them the first `docker version` after a wake took 0.9 s instead of 0.15 s.
    public static let releaseCommand = """
        sync; echo 3 > /proc/sys/vm/drop_caches; echo 1 > /proc/sys/vm/compact_memory; \
        bin=$(dirname "$(readlink /proc/$(pidof dockerd)/exe)") && \
        cat "$bin/runc" "$bin/docker-init" "$bin/containerd-shim-runc-v2" "$bin/docker-proxy" > /dev/null 2>&1; true
        """

    // MARK: The mark

    /// Marks the machine asleep since `date` (written by its agent after the pause).
    public static func mark(_ files: MachineFiles, since date: Date = Date()) {
        try? AtomicFile.write(Data("\(Int(date.timeIntervalSince1970))\n".utf8), to: files.sleeping, mode: 0o600)
    }

    public static func clearMark(_ files: MachineFiles) {
        try? FileManager.default.removeItem(at: files.sleeping)
    }

    /// Whether the machine sleeps: its agent marked it, and libvirt has it paused at a user's
    /// request (the agent's pause is one). A mark beside any other state is not believed.
    public static func isAsleep(_ status: Domain.Status, files: MachineFiles) -> Bool {
        status.state == .paused && status.reason == "user" && markedSince(files) != nil
    }

    /// Since when the agent has had the machine asleep, if it says so. Only a domain that is
    /// paused is asleep: a mark left by an agent that died is not believed past a boot.
    public static func markedSince(_ files: MachineFiles) -> Date? {
        guard let text = try? String(contentsOf: files.sleeping, encoding: .utf8),
              let seconds = Double(text.trimmed()) else { return nil }
        return Date(timeIntervalSince1970: seconds)
    }
}
