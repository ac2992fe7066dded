import FoundationEssentials
import HostOS
import SSH

/// How full the machine's data disk is (the engine's images, containers and volumes live
/// there), as the host agent last measured it in the guest: `status`, `ls` and `up` warn from
/// 90% on, with the fixes. A full disk never stops stop, start, suspend or rm.
public struct DataDiskUsage: Codable, Sendable, Equatable {
    public let sizeKiB: Int64
    public let usedKiB: Int64
    public let availableKiB: Int64
    /// When it was measured (seconds since 1970).
    public let measured: Double

    /// The guest command, and the folder on the data disk it measures.
    public static let command = "df -kP /var/lib/docker"
    /// How often the agent measures.
    public static let interval: TimeInterval = 30
    public static let warnPercent = 90

    /// df -kP's second line: "DEVICE SIZE USED AVAILABLE CAPACITY% MOUNTPOINT".
    public static func parse(df output: String, at date: Date = Date()) -> DataDiskUsage? {
        let lines = output.split(separator: "\n")
        guard lines.count >= 2 else { return nil }
        let fields = lines[1].split(separator: " ", omittingEmptySubsequences: true)
        // The guest's df says it: sizes past an exbibyte (2^50 KiB) are not a disk, and would
        // overflow `percent`.
        let sane = { (kib: Int64?) in kib.flatMap { (0...(Int64(1) << 50)).contains($0) ? $0 : nil } }
        guard fields.count >= 4, let size = sane(Int64(fields[1])), let used = sane(Int64(fields[2])), let available = sane(Int64(fields[3])),
              size > 0 else { return nil }
        return DataDiskUsage(sizeKiB: size, usedKiB: used, availableKiB: available, measured: date.timeIntervalSince1970)
    }

    /// Used as df counts it: of what is there for use (the blocks reserved for root aside).
    public var percent: Int {
        let usable = usedKiB + availableKiB
        return usable > 0 ? Int((usedKiB * 100 + usable - 1) / usable) : 0
    }

    /// The warning to show, nil under the threshold.
    public func warning(machine: String) -> String? {
        guard percent >= Self.warnPercent else { return nil }
        let gib = { (kib: Int64) in String(cFormat: "%.1f", Double(kib) / 1_048_576) }
        let suggested = max(Int((Double(sizeKiB) / 1_048_576 * 2).rounded(.up)), 8)
        return "warning: the data disk of \(machine) is \(percent)% full (\(gib(usedKiB)) of \(gib(usedKiB + availableKiB)) GiB used): "
            + "free space with `docker system prune` (add --volumes for unused volumes), or give it more with "
            + "`machine set\(MachineName.commandSuffix(machine)) --disk \(suggested)G` and `machine restart\(MachineName.commandSuffix(machine))`"
    }

    /// Measures over `session` (nil when df fails or says something else).
    public static func measure(over session: Session) throws(SSHError) -> DataDiskUsage? {
        let result = try session.run(command)
        return result.status == 0 ? parse(df: String(decoding: result.output, as: UTF8.self)) : nil
    }

    public func save(to url: URL) {
        guard let data = try? JSONEncoder().encode(self) else { return }
        try? AtomicFile.write(data, to: url, mode: 0o600)
    }

    /// The last measurement, if the agent made one lately (an old one may be of a stopped boot).
    public static func recent(at url: URL, within age: TimeInterval = 5 * interval) -> DataDiskUsage? {
        guard let data = try? Data(contentsOf: url), let usage = try? JSONDecoder().decode(DataDiskUsage.self, from: data),
              Date().timeIntervalSince1970 - usage.measured < age else { return nil }
        return usage
    }
}
