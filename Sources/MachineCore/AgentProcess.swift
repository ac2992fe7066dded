import Foundation
#if canImport(Glibc)
import Glibc
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
        let fd = open(files.agentLock.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        let text = (try? String(contentsOf: files.agentPid, encoding: .utf8)) ?? ""
        return pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Starts `machine agent NAME` detached, unless one runs; waits until it serves the socket.
    @discardableResult
    public func start(uri: String, executable: String = AgentProcess.currentExecutable()) throws(MachineError) -> pid_t {
        if let pid = runningPid() { return pid }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, files.agentLog.path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else from this process: an inherited descriptor (our SSH session, a pipe of
        // the caller's shell) would stay open for the agent's whole life.
        // (Swift's Glibc does not import posix_spawn_file_actions_addclosefrom_np.)
        let inherited = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in inherited where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own session: closing the terminal or killing the CLI's process group leaves it.
        // (POSIX_SPAWN_SETSID is glibc's 0x80; Swift's Glibc module does not import it.)
        let setsid: Int32 = 0x80
        posix_spawnattr_setflags(&attributes, Int16(setsid | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGPIPE] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        // The agent checks the config it reloads against libvirt's copy, on the same daemon.
        let argv = [executable, "agent", "--connect", uri, name]
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, &cArgs, environ)
        guard rc == 0 else {
            throw MachineError("cannot start the host agent (\(executable)): \(String(cString: strerror(rc)))")
        }
        // Reaped by a thread so it never lingers as a zombie while this CLI runs; once the
        // CLI exits, init adopts it.
        let child = pid
        Thread.detachNewThread {
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

    /// The body of `machine agent NAME`: takes the agent lock (exits quietly if another agent
    /// holds it), serves the engine socket, runs until stopped.
    /// `loadConfig` reads the machine's config whenever the manual forwards are reloaded.
    public func serve(port: Int, loadConfig: @escaping () throws(MachineError) -> MachineConfig) throws(MachineError) {
        Agent.installSignalHandlers()
        let lockFD = open(files.agentLock.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw MachineError("cannot open \(files.agentLock.path): \(String(cString: strerror(errno)))") }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            Self.log("another agent serves \(name) already; exiting")
            return
        }
        try AtomicFile.write(Data("\(getpid())\n".utf8), to: files.agentPid, mode: 0o600)
        Self.log("agent \(getpid()) for \(name) starting")
        let agent = Agent(guest: GuestSSH(name: name, port: port, files: files), log: Self.log)
        try agent.listen(unixSocket: files.dockerSocket.path, name: "docker.sock", target: .unixSocket(Self.guestDockerSocket))
        let name = self.name
        agent.enablePortForwarding(statusFile: files.portsStatus) {
            do throws(MachineError) {
                return try loadConfig()
            } catch {
                Self.log("kept the forwards as they were: \(error.description)")
                return nil
            }
        }
        agent.run()
        unlink(files.agentPid.path)
        Self.log("agent \(getpid()) stopped")
        close(lockFD)
    }

    static func log(_ line: String) {
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: .current, formatOptions: [.withInternetDateTime])
        FileHandle.standardError.write(Data("\(stamp) \(line)\n".utf8))
    }

    public static func currentExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    private func isSocket(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
    }
}
