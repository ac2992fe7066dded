import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs helper programs (ssh-keygen, qemu-img, xorriso, the accelerator probe) with
/// posix_spawn and waitpid. Foundation's Process.waitUntilExit was seen never returning here
/// while another child was alive.
public enum Subprocess {
    public struct Result: Sendable {
        public let status: Int32
        public let output: String
        public let timedOut: Bool
    }

    /// Runs argv (argv[0] looked up in PATH), collects stdout and stderr together, kills the
    /// program after `timeout` seconds.
    public static func run(_ argv: [String], timeout: Double = 120) throws(MachineError) -> Result {
        let capture = FileManager.default.temporaryDirectory.appendingPathComponent("machine-\(getpid())-\(UUID().uuidString)")
        defer { unlink(capture.path) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, capture.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var pid: pid_t = 0
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        let rc = posix_spawnp(&pid, argv[0], &actions, nil, &cArgs, environ)
        guard rc == 0 else {
            throw MachineError("cannot run \(argv[0]): \(String(cString: strerror(rc)))",
                               hint: "install it (scripts/host-setup.sh lists the host packages)")
        }
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
        let exit: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: timedOut ? -1 : exit, output: output, timedOut: timedOut)
    }

    /// Runs argv and throws with its output if it fails.
    @discardableResult
    public static func check(_ argv: [String], timeout: Double = 120, what: String) throws(MachineError) -> String {
        let result = try run(argv, timeout: timeout)
        guard result.status == 0 else {
            throw MachineError("\(what) failed (\(argv[0]) exited \(result.status)): \(result.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return result.output
    }
}
