import Foundation
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
        let exit: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: timedOut ? -1 : exit, output: output, timedOut: timedOut)
    }

    /// Runs argv and throws with its output if it fails.
    @discardableResult
    public static func check(_ argv: [String], timeout: Double = 120, what: String) throws(SystemError) -> String {
        let result = try run(argv, timeout: timeout)
        guard result.status == 0 else {
            throw SystemError(what, code: 0,
                              detail: "\(argv[0]) exited \(result.status): \(result.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return result.output
    }
}
