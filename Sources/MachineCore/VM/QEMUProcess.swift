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
        // The session daemon's runtime folder is GLib's: $XDG_RUNTIME_DIR, else the cache
        // folder (a login without systemd, `su -`, has no runtime folder).
        let runtime = environment["XDG_RUNTIME_DIR"].map { URL(fileURLWithPath: $0) }
            ?? environment["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return runtime.appendingPathComponent("libvirt/qemu/run/\(domain).pid")
    }

    /// The pid libvirt's pid file of `domain` names; nil without one.
    static func pid(domain: String, uri: String) -> Int32? {
        guard let file = pidFile(domain: domain, uri: uri) else { return nil }
        return (try? String(contentsOf: file, encoding: .utf8)).flatMap { Int32($0.trimmed()) }
    }

    /// The QEMU of `domain` running here, by libvirt's pid file, with the domain UUID it was
    /// started with; nil when none runs (or the pid is another process's by now).
    static func running(domain: String, uri: String) -> (pid: Int32, uuid: String)? {
        guard let pid = pid(domain: domain, uri: uri),
              let cmdline = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
        else { return nil }
        let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return identity(arguments: arguments, domain: domain).map { (pid, $0) }
    }

    /// The UUID of a QEMU command line libvirt made for `domain` (`-name guest=DOMAIN,...`,
    /// `-uuid UUID`); nil for any other.
    static func identity(arguments: [String], domain: String) -> String? {
        func value(of option: String) -> String? {
            arguments.firstIndex(of: option).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
        }
        guard let name = value(of: "-name"),
              name.split(separator: ",").first == Substring("guest=\(domain)"),
              let uuid = value(of: "-uuid") else { return nil }
        return uuid
    }

    /// QEMU's resident memory (VmRSS), guest RAM it touched and its own (under TCG, its cache
    /// of translated code) together; nil when it does not run here.
    static func residentBytes(domain: String, uri: String) -> Int64? {
        guard let pid = pid(domain: domain, uri: uri),
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
