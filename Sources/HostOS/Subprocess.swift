import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Runs helper programs (ssh-keygen, qemu-img, xorriso, the accelerator probe) to their end
/// (Spawn, then waitpid).
public enum Subprocess {
    public struct Result: Sendable {
        public let status: Int32
        public let output: String
        public let timedOut: Bool
    }

    /// Runs argv (argv[0] looked up in PATH), collects stdout and stderr together, kills the
    /// program after `timeout` seconds.
    public static func run(_ argv: [String], timeout: Double = 120) throws(SystemError) -> Result {
        let capture = FileManager.default.temporaryDirectory.appendingPathComponent("machine-\(getpid())-\(UUID().uuidString)")
        defer { unlink(capture.path) }
        let pid = try Spawn.start(argv, .init(output: capture.path))
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        var timedOut = false
        while true {
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid { break }
            if done < 0 && errno != EINTR { break }
            if Date() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                timedOut = true
                break
            }
            usleep(10_000)
        }
        let output = (try? String(contentsOf: capture, encoding: .utf8)) ?? ""
        return Result(status: timedOut ? -1 : exitCode(status), output: output, timedOut: timedOut)
    }

    /// Runs argv to its end (no time limit: for the image recipes, which take minutes) with
    /// `environment`, its stdout read through a pipe, its stderr on this process's stderr
    /// (`showErrors`) or /dev/null. Returns its exit status (128 + N for signal N) and stdout.
    public static func capture(_ argv: [String], environment: [String: String]? = nil,
                               showErrors: Bool) throws(SystemError) -> (status: Int32, output: Data) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw SystemError.last("make a pipe") }
        // (Swift's Glibc does not import pipe2.) Close-on-exec for other children started meanwhile.
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        var options = Spawn.Options(output: "/dev/null")
        options.stdout = ends[1]
        if showErrors { options.stderr = STDERR_FILENO }
        options.environment = environment
        let pid: pid_t
        do {
            pid = try Spawn.start(argv, options)
        } catch {
            close(ends[0])
            close(ends[1])
            throw error
        }
        close(ends[1])
        var output = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(ends[0], &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            output.append(contentsOf: buffer[0..<count])
        }
        close(ends[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (exitCode(status), output)
    }

    /// A wait status as a shell reports it: the exit code, or 128 + N for signal N.
    private static func exitCode(_ status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Runs argv and throws with its output if it fails.
    @discardableResult
    public static func check(_ argv: [String], timeout: Double = 120, what: String) throws(SystemError) -> String {
        let result = try run(argv, timeout: timeout)
        guard result.status == 0 else {
            throw SystemError(what, code: 0,
                              detail: "\(argv[0]) exited \(result.status): \(result.output.trimmed())")
        }
        return result.output
    }
}
