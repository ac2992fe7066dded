import FoundationEssentials
import HostOS

/// libvirt's log of a domain's QEMU: its command line, and whatever QEMU said before it died
/// or stopped its CPUs ("KVM internal error. Suberror: 1", "terminating on signal 9"). When a
/// guest dies before it prints anything, this is the only place with the reason.
public enum QEMULog {
    /// Where libvirt writes it: the system daemon under /var/log, a user's session daemon
    /// under that user's cache. nil for a remote daemon.
    public static func path(domain: String, uri: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
        guard let system = localDaemonIsSystem(uri: uri) else { return nil }
        if system {
            return URL(fileURLWithPath: "/var/log/libvirt/qemu/\(domain).log")
        }
        let cache = environment["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return cache.appendingPathComponent("libvirt/qemu/log/\(domain).log")
    }

    /// Whether the daemon `uri` names keeps its files where the system daemon does (root's
    /// session is the system daemon too); nil for a daemon on another host, whose files are there.
    static func localDaemonIsSystem(uri: String) -> Bool? {
        guard uri.hasPrefix("qemu:///") else { return nil }
        return uri.hasSuffix("/system") || HostUser.isRoot
    }

    /// The part of the log written since the domain's last start.
    public static func lastRun(in text: String) -> Substring {
        guard let start = text.ranges(of: ": starting up ").last else { return Substring(text) }
        let lineStart = text[..<start.lowerBound].lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex
        return text[lineStart...]
    }

    /// QEMU's own reason from the last run, in one line: its first error line (with the
    /// line after it when that names the failure, as KVM's "emulation failure" does), else how
    /// it ended ("terminating on signal 9", libvirt's "shutting down, reason=crashed").
    public static func lastError(in text: String) -> String? {
        let lines = lastRun(in: text).split(whereSeparator: \.isNewline).map { $0.trimmed() }
            // The command line and its environment are long and never the reason.
            .filter { !$0.isEmpty && !$0.hasPrefix("LC_ALL=") && !$0.contains(" -name guest=") }
        if let index = lines.firstIndex(where: { $0.lowercased().contains("error") }) {
            var reason = lines[index]
            if index + 1 < lines.count, lines[index + 1].lowercased().contains("failure") {
                reason += " (\(lines[index + 1]))"
            }
            return reason
        }
        return lines.last { $0.contains("terminating on signal") }
            ?? lines.last { $0.contains("shutting down, reason=") && !$0.hasSuffix("reason=shutdown") && !$0.hasSuffix("reason=destroyed") }
    }

    /// `lastError` of the file at `path`, if it can be read (the system daemon's log is root's).
    public static func lastError(at path: URL?) -> String? {
        guard let path, let text = try? String(contentsOf: path, encoding: .utf8) else { return nil }
        return lastError(in: text)
    }
}
