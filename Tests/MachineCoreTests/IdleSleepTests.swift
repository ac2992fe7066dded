import Foundation
@testable import MachineCore
import Testing
import Virt

/// The idle sleep's setting as users write it, the guest's CPU as the agent reads it, and the
/// state `status` shows.
@Suite struct IdleSleepTests {
    @Test func timesAreReadInTheWordsUsersWrite() throws {
        #expect(try IdleSleep.parse("off") == 0)
        #expect(try IdleSleep.parse("0") == 0)
        #expect(try IdleSleep.parse("45") == 45)
        #expect(try IdleSleep.parse("30s") == 30)
        #expect(try IdleSleep.parse("15m") == 900)
        #expect(try IdleSleep.parse("1H") == 3600)
        for wrong in ["", "m", "soon", "-5m", "1.5h", "2s", "9999h"] {
            #expect(throws: MachineError.self, "\(wrong)") { try IdleSleep.parse(wrong) }
        }
        #expect((try? IdleSleep.parse("soon")) == nil)
    }

    @Test func describedAsParsed() throws {
        for seconds in [0, 3, 45, 90, 300, 900, 3600, 7200] {
            #expect(try IdleSleep.parse(IdleSleep.describe(seconds)) == seconds)
        }
        #expect(IdleSleep.describe(300) == "5m")
        #expect(IdleSleep.describe(0) == "off")
    }

    @Test func aMachineMadeBeforeTheSettingSleepsAfterTheDefault() throws {
        let config = try MachineConfig.decoder.decode(MachineConfig.self, from: Data("""
            {"name":"old","cpus":2,"memoryMiB":1024,"diskGiB":20,"sshPort":2222,"accel":"auto","created":"2026-01-01T00:00:00Z"}
            """.utf8))
        #expect(config.idleSleep == nil && config.idleSleepSeconds == IdleSleep.defaultSeconds)
        var off = config
        off.idleSleep = 0
        #expect(off.idleSleepSeconds == 0)
        #expect(!String(decoding: config.encoded(), as: UTF8.self).contains("idleSleep"))
    }

    /// Two samples a second apart of a 2-vCPU guest: 2 of 200 ticks busy is 2% of one vCPU;
    /// 150 of 200 is a container working.
    @Test func theGuestsCPUShareIsOfOneVCPU() {
        let quiet = """
            cpu  1000 0 2000 50000 10 0 5 0 0 0
            cpu0 500 0 1000 25000 5 0 3 0 0 0
            cpu1 500 0 1000 25000 5 0 2 0 0 0
            cpu  1001 0 2001 50198 10 0 5 0 0 0
            cpu0 501 0 1000 25099 5 0 3 0 0 0
            cpu1 500 0 1001 25099 5 0 2 0 0 0
            """
        #expect(abs((IdleSleep.cpuShare(fromProcStat: quiet) ?? -1) - 0.02) < 0.001)
        let busy = quiet.replacingOccurrences(of: "cpu  1001 0 2001 50198", with: "cpu  1150 0 2000 50050")
        #expect((IdleSleep.cpuShare(fromProcStat: busy) ?? 0) > IdleSleep.busyShareOfOneCPU)
        #expect(IdleSleep.cpuShare(fromProcStat: "grep: /proc/stat: No such file") == nil)
    }

    @Test func aPauseTheAgentMadeReadsAsSleeping() {
        let paused = Domain.Status(state: .paused, reason: "user")
        #expect(MachineInfo.state(paused, asleep: true) == "sleeping")
        #expect(MachineInfo.state(paused, asleep: false) == "paused")
        // A mark left from a boot that is over is not believed.
        #expect(MachineInfo.state(Domain.Status(state: .running, reason: "booted"), asleep: true) == "running")
        #expect(MachineInfo.state(Domain.Status(state: .paused, reason: "ioerror"), asleep: true) == "paused")
        #expect(MachineInfo.state(Domain.Status(state: .stopped, reason: "saved"), asleep: false) == "suspended")
    }
}
