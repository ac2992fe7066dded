import Foundation
import HostOS
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
        // The agent checks the config it reloads against libvirt's copy, on the same daemon.
        let argv = [executable, "agent", "--connect", uri, name]
        let pid: pid_t
        do throws(SystemError) {
            pid = try Spawn.start(argv, .init(output: files.agentLog.path, append: true, newSession: true, searchPath: false))
        } catch {
            throw MachineError("cannot start the host agent (\(executable)): \(error.description)", kind: .host, cause: error)
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

    public static func log(_ line: String) {
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
