import Foundation
import MachineCore
import Testing

@Suite struct QEMULogTests {
    // libvirt's log of one domain over two runs, as it writes them: the first ended by a
    // `kill -9`, the second by KVM failing on the guest kernel (QEMU then pauses the domain).
    let log = """
        2026-11-30 12:08:47.290+0000: starting up libvirt version: 9.0.0, qemu version: 7.2.22
        LC_ALL=C PATH=/usr/bin HOME=/var/lib/libvirt/qemu/domain-1 \\
        /usr/bin/qemu-system-x86_64 \\
        -name guest=machine-default,debug-threads=on \\
        -msg timestamp=on
        2026-11-30 12:10:54.264+0000: shutting down, reason=crashed
        2026-11-30 12:11:30.316+0000: starting up libvirt version: 9.0.0, qemu version: 7.2.22
        LC_ALL=C PATH=/usr/bin HOME=/var/lib/libvirt/qemu/domain-2 \\
        -msg timestamp=on
        KVM internal error. Suberror: 1
        emulation failure
        RAX=0000000000000000 RBX=ffffffff82a03e80
        """

    @Test func readsOnlyTheLatestRun() {
        #expect(QEMULog.lastRun(in: log).hasPrefix("2026-11-30 12:11:30.316+0000: starting up"))
        #expect(!QEMULog.lastRun(in: log).contains("reason=crashed"))
    }

    @Test func kvmsOwnWordsAreTheReason() {
        #expect(QEMULog.lastError(in: log) == "KVM internal error. Suberror: 1 (emulation failure)")
    }

    @Test func aKilledQEMUIsNamedAsSuch() {
        let killed = String(log[..<log.range(of: "2026-11-30 12:11:30")!.lowerBound])
        #expect(QEMULog.lastError(in: killed) == "2026-11-30 12:10:54.264+0000: shutting down, reason=crashed")
    }

    @Test func aCleanRunHasNoReason() {
        #expect(QEMULog.lastError(in: "2026-11-30 12:00:00.000+0000: starting up libvirt\n-msg timestamp=on\n2026-11-30 12:01:00.000+0000: shutting down, reason=shutdown\n") == nil)
    }

    @Test func theSystemDaemonsLogIsUnderVarLog() {
        #expect(QEMULog.path(domain: "machine-dev", uri: "qemu:///system")?.path == "/var/log/libvirt/qemu/machine-dev.log")
        #expect(QEMULog.path(domain: "machine-dev", uri: "qemu+ssh://host/system") == nil)
    }
}
