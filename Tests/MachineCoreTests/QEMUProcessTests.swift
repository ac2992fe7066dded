import Foundation
@testable import MachineCore
import Testing

/// Finding a machine's QEMU and its resident memory (`inspect`).
@Suite struct QEMUProcessTests {
    @Test func thePidFileIsTheDaemonsOwn() {
        #expect(QEMUProcess.pidFile(domain: "machine-dev-1", uri: "qemu:///system")?.path == "/run/libvirt/qemu/machine-dev-1.pid")
        #expect(QEMUProcess.pidFile(domain: "machine-dev-1", uri: "qemu+ssh://host/system") == nil)
    }

    @Test func residentMemoryIsReadFromVmRSS() {
        let status = "Name:\tqemu-system-x86\nVmPeak:\t 9437184 kB\nVmRSS:\t  734208 kB\nRssAnon:\t  100 kB\n"
        #expect(QEMUProcess.residentBytes(status: status) == Int64(751_828_992))
        #expect(QEMUProcess.residentBytes(status: "Name:\tx\n") == nil)
        // This test's own process, read the same way: a real status file parses.
        let own = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        #expect((own.flatMap(QEMUProcess.residentBytes(status:)) ?? 0) > 1 << 20)
    }
}
