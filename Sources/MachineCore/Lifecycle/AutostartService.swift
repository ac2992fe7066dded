import FoundationEssentials
import HostOS

/// What brings the machines marked by `machine autostart` back after the host restarts: a
/// systemd unit that runs `machine autostart --start` for one machine home, at boot for root
/// (a system unit) and at the user's first login for an ordinary user (a user unit; with
/// `loginctl enable-linger` at boot too). One unit per home, named after its id, so two homes
/// of one account never share one. Where no systemd runs (containers, CI, other inits), the
/// unit is still written, and the user is told to run the command from their own start-up.
public struct AutostartService: Sendable {
    public enum Scope: Sendable, Equatable {
        /// Root's machines: /etc/systemd/system, started at boot.
        case system
        /// An ordinary user's: ~/.config/systemd/user, started at their login.
        case user(home: URL)
    }

    public let scope: Scope
    public let paths: Paths
    /// The machine binary the unit runs (the one running now).
    public let executable: String
    /// `MACHINE_HOME` and `MACHINE_CACHE` when they were set: the unit must act on the same
    /// home, and boot the same builds.
    public let environment: [String: String]
    /// The man page installed beside the binary, if there is one (systemd-analyze verify
    /// fails a unit whose Documentation= names a page that is not there).
    public let manual: Bool

    public init(scope: Scope, paths: Paths, executable: String, environment: [String: String] = [:], manual: Bool = false) {
        self.scope = scope
        self.paths = paths
        self.executable = executable
        self.environment = environment
        self.manual = manual
    }

    /// The service for the account running this process.
    public static func current(paths: Paths, environment: [String: String] = ProcessInfo.processInfo.environment) -> AutostartService {
        let home = Paths.userHome(environment: environment)
        let kept = environment.filter { ["MACHINE_HOME", "MACHINE_CACHE"].contains($0.key) && !$0.value.isEmpty }
        let manual = FileManager.default.fileExists(atPath: AgentProcess.besideExecutable("../share/man/man1/machine.1.gz").path)
        return AutostartService(scope: HostUser.isRoot ? .system : .user(home: home), paths: paths,
                                executable: AgentProcess.currentExecutable(), environment: kept, manual: manual)
    }

    public var unitName: String { "machine-autostart-\(paths.homeID).service" }

    public var unitFile: URL {
        switch scope {
        case .system: URL(fileURLWithPath: "/etc/systemd/system").appendingPathComponent(unitName)
        case .user(let home): home.appendingPathComponent(".config/systemd/user").appendingPathComponent(unitName)
        }
    }

    /// Whether systemd manages this host (its own test, sd_booted: /run/systemd/system exists).
    public static var systemdRuns: Bool { FileManager.default.fileExists(atPath: "/run/systemd/system") }

    public var unitText: String {
        let environment = self.environment.sorted { $0.key < $1.key }
            .map { "Environment=\(Self.quoted("\($0.key)=\($0.value)"))\n" }.joined()
        let ordering: String
        let wantedBy: String
        switch scope {
        case .system:
            // Root's machines run on the system libvirtd; an ordinary user's session daemon is
            // started by libvirt itself when the first command connects.
            ordering = "Wants=libvirtd.service virtlogd.service\nAfter=libvirtd.service virtlogd.service network.target\n"
            wantedBy = "multi-user.target"
        case .user:
            ordering = ""
            wantedBy = "default.target"
        }
        return """
            [Unit]
            Description=Start the machines of \(paths.home.path) marked with machine autostart
            \(manual ? "Documentation=man:machine(1)\n" : "")\(ordering)
            [Service]
            Type=oneshot
            RemainAfterExit=yes
            # The agents it starts outlive this command: stopping the unit leaves them running.
            KillMode=process
            \(environment)ExecStart=\(Self.quoted(executable)) autostart --start
            TimeoutStartSec=15min

            [Install]
            WantedBy=\(wantedBy)

            """
    }

    /// systemctl for this unit's scope: the system manager, or the user's own.
    private var systemctl: [String] {
        scope == .system ? ["systemctl"] : ["systemctl", "--user"]
    }

    /// Writes the unit and, where systemd runs, enables it. Returns what it did, in words.
    public func install() throws(MachineError) -> [String] {
        let folder = unitFile.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try AtomicFile.write(Data(unitText.utf8), to: unitFile, mode: 0o644)
        } catch {
            throw MachineError("cannot write \(unitFile.path): \(error)", hint: "check that \(folder.path) is writable")
        }
        var said = ["wrote \(unitFile.path)"]
        guard Self.systemdRuns else {
            let startUp = scope == .system ? "the host's boot scripts (/etc/rc.local, or your init's own)" : "your login file (~/.profile)"
            said.append("no systemd runs on this host, so nothing starts marked machines by itself: run `\(executable) autostart --start` from \(startUp)")
            return said
        }
        _ = try Subprocess.output(of: systemctl + ["daemon-reload"], what: "reload systemd's units")
        _ = try Subprocess.output(of: systemctl + ["enable", unitName], what: "enable \(unitName)")
        said.append("enabled \(unitName) (\(systemctl.joined(separator: " ")))")
        if case .user = scope {
            said.append("it starts them when you log in; to start them at boot without a login, as root: loginctl enable-linger \(ProcessInfo.processInfo.userName)")
        }
        return said
    }

    /// The unit has nothing to start once no machine of its home is marked (`autostart off`
    /// of the last one, or its `rm`): it is disabled where systemd runs, then removed. Returns
    /// what it did, in words; nothing while a machine is marked or when there is no unit.
    public func removeUnlessMarked(_ marked: [String]) throws(MachineError) -> [String] {
        guard marked.isEmpty, HostPath.exists(unitFile.path) else { return [] }
        var said: [String] = []
        if Self.systemdRuns {
            _ = try Subprocess.output(of: systemctl + ["disable", unitName], what: "disable \(unitName)")
            said.append("disabled \(unitName) (\(systemctl.joined(separator: " ")))")
        }
        do {
            try FileManager.default.removeItem(at: unitFile)
        } catch {
            throw MachineError("cannot remove \(unitFile.path): \(error.explanation)", hint: "remove it by hand: no machine of \(paths.home.path) is marked for autostart")
        }
        if Self.systemdRuns { _ = try Subprocess.output(of: systemctl + ["daemon-reload"], what: "reload systemd's units") }
        said.append("removed \(unitFile.path): no machine of \(paths.home.path) is marked for autostart")
        return said
    }

    /// A systemd unit value in double quotes, as systemd.syntax(7) reads them.
    static func quoted(_ value: String) -> String {
        "\"" + value.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
    }
}
