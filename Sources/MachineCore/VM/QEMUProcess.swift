import FoundationEssentials
import HostOS

/// The QEMU process of a running domain on this host, as libvirt's pid file names it.
enum QEMUProcess {
    /// libvirt's pid file of `domain`: the system daemon's, or the user's session daemon's.
    static func pidFile(domain: String, uri: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
        guard let system = QEMULog.localDaemonIsSystem(uri: uri) else { return nil }
        if system {
            return URL(fileURLWithPath: "/run/libvirt/qemu/\(domain).pid")
        }
        let runtime = environment["XDG_RUNTIME_DIR"] ?? "/run/user/\(HostUser.id)"
        return URL(fileURLWithPath: runtime).appendingPathComponent("libvirt/qemu/run/\(domain).pid")
    }

    /// QEMU's resident memory (VmRSS), guest RAM it touched and its own (under TCG, its cache
    /// of translated code) together; nil when it does not run here.
    static func residentBytes(domain: String, uri: String) -> Int64? {
        guard let file = pidFile(domain: domain, uri: uri),
              let pid = (try? String(contentsOf: file, encoding: .utf8)).flatMap({ Int32($0.trimmed()) }),
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        else { return nil }
        return residentBytes(status: status)
    }

    /// VmRSS of a /proc/PID/status text, in bytes.
    static func residentBytes(status: String) -> Int64? {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int64(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return nil }
        return kib * 1024
    }
}
