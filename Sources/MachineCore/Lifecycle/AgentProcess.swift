import FoundationEssentials
import HostOS
#if canImport(Glibc)
import Glibc  // the agent process: its signals, waitpid(2), and the kind of its socket file
#endif

/// The host agent as a process: started detached (its own session, no terminal, output to
/// `agent.log`) so it outlives the CLI and the terminal; found through the flock it holds on
/// `agent.lock` for its whole life, which also keeps a second agent from starting.
public struct AgentProcess: Sendable {
    public let name: String
    public let files: MachineFiles

    /// Where the engine listens in the guest.
    public static let guestDockerSocket = "/var/run/docker.sock"

    public init(name: String, files: MachineFiles) {
        self.name = name
        self.files = files
    }

    /// The agent's pid if one runs for this machine.
    public func runningPid() -> pid_t? {
        guard FileLock.isHeld(files.agentLock.path) else { return nil }
        let text = (try? String(contentsOf: files.agentPid, encoding: .utf8)) ?? ""
        return pid_t(text.trimmed())
    }

    /// Starts `machine agent NAME` detached, unless one runs; waits until it serves the socket.
    @discardableResult
    public func start(uri: String, executable: String = AgentProcess.currentExecutable()) throws(MachineError) -> pid_t {
        if let pid = runningPid() { return pid }
        // The agent checks the config it reloads against libvirt's copy, on the same daemon.
        let argv = Self.commandLine(executable: executable, uri: uri, name: name)
        let pid: pid_t
        do throws(SystemError) {
            pid = try Spawn.start(argv, .init(output: files.agentLog.path, append: true, newSession: true, searchPath: false))
        } catch {
            throw MachineError("cannot start the host agent (\(executable)): \(error.description)", kind: .host, cause: error)
        }
        // Reaped by a thread so it never lingers as a zombie while this CLI runs; once the
        // CLI exits, init adopts it.
        let child = pid
        Threads.detach {
            var status: Int32 = 0
            _ = waitpid(child, &status, 0)
        }
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if runningPid() != nil && isSocket(files.dockerSocket.path) { return pid }
            if kill(pid, 0) != 0 { break }
            usleep(20_000)
        }
        throw MachineError("the host agent of \(name) did not start", hint: "see \(files.agentLog.path)")
    }

    /// The agent's command line, `EXECUTABLE agent --connect URI NAME`: a format of its own,
    /// read back from /proc by `stopStrays` and by the package's prerm (packaging/debian/prerm,
    /// which takes its 2nd and 5th words; AgentProcessTests holds both to this).
    public static func commandLine(executable: String, uri: String, name: String) -> [String] {
        [executable, "agent", "--connect", uri, name]
    }

    /// The machine whose agent `argv` is; nil for any other command line.
    static func machine(ofAgent argv: [String]) -> String? {
        argv.count == 5 && argv[1] == "agent" && argv[2] == "--connect" ? argv[4] : nil
    }

    /// Asks a running agent to read the manual forwards from the config again.
    public func reload() {
        if let pid = runningPid(), pid > 1 { kill(pid, SIGUSR1) }
    }

    /// Stops the agent (SIGTERM, then SIGKILL after 5 s). True if one was running.
    @discardableResult
    public func stop() -> Bool {
        guard let pid = runningPid(), pid > 1 else { return false }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while runningPid() != nil && Date() < deadline { usleep(20_000) }
        if runningPid() != nil {
            kill(pid, SIGKILL)
            while runningPid() != nil { usleep(20_000) }
        }
        // A killed agent leaves its socket; nothing serves it any more.
        if isSocket(files.dockerSocket.path) { unlink(files.dockerSocket.path) }
        return true
    }

    /// Stops the agents of machine `name` of this home that no lock file finds any more (its
    /// folder was deleted while it ran): found by their command line and MACHINE_HOME in /proc.
    /// They would end by themselves within seconds (AgentLifeline); `rm --force` does not wait.
    public static func stopStrays(name: String, paths: Paths) {
        let home = paths.home.standardizedFileURL.path
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
        for pid in pids where pid != getpid() {
            guard let argv = procStrings(pid, "cmdline"), machine(ofAgent: argv) == name,
                  let environ = procStrings(pid, "environ") else { continue }
            let environment = Dictionary(environ.compactMap { entry -> (String, String)? in
                guard let equals = entry.firstIndex(of: "=") else { return nil }
                return (String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
            }, uniquingKeysWith: { first, _ in first })
            guard Paths(environment: environment).home.standardizedFileURL.path == home else { continue }
            kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(5)
            while kill(pid, 0) == 0 && Date() < deadline { usleep(20_000) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
    }

    private static func procStrings(_ pid: pid_t, _ file: String) -> [String]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/\(file)") else { return nil }
        return data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
    }

    /// agent.log, once the agent runs: it is rotated at `logLimit` (agent.log.1 keeps the last).
    nonisolated(unsafe) public static var logPath: String?
    public static let logLimit = 1 << 20
    /// The console log (this boot's only) is trimmed past `consoleLimit` to its first 256 KiB
    /// and its last MiB.
    public static let consoleLimit = 4 << 20

    public static func log(_ line: String) {
        StandardStream.error.write("\(HostClock.timestamp()) \(line)\n")
        if let logPath { BoundedLog.rotateOutput(logPath, limit: logLimit) }
    }

    /// Keeps the console log of the running boot under `consoleLimit` (the agent, now and then).
    public func trimConsoleLog() {
        if let dropped = BoundedLog.trim(files.consoleLog.path, limit: Self.consoleLimit, head: 256 << 10, tail: 1 << 20) {
            Self.log("trimmed \(dropped) bytes from the middle of \(files.consoleLog.lastPathComponent)")
        }
    }

    public static func currentExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// A path of the installation this binary belongs to, relative to the folder of the binary
    /// itself (symlinks resolved): `../share/machine` for the recipes, `../lib/machine/prebuilt`
    /// for the builds installed for every account.
    public static func besideExecutable(_ relative: String) -> URL {
        URL(fileURLWithPath: currentExecutable()).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent(relative).standardized
    }

    private func isSocket(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
    }
}
