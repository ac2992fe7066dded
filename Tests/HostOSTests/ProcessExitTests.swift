import Foundation
import HostOS
import Testing

/// The agent's watch on QEMU: a process it did not start, seen to end.
@Suite struct ProcessExitTests {
    @Test func aProcessIsSeenRunningThenEnded() throws {
        let pid = try Spawn.start(["sleep", "30"], .init(output: "/dev/null"))
        let exit = try #require(ProcessExit(pid: pid))
        #expect(!exit.hasEnded)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        #expect(exit.hasEnded)
        // Its pid may be given to another process; the watch still names the one that ended.
        #expect(exit.hasEnded)
    }

    @Test func noProcessNoWatch() throws {
        let pid = try Spawn.start(["true"], .init(output: "/dev/null"))
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        #expect(ProcessExit(pid: pid) == nil)
    }
}
