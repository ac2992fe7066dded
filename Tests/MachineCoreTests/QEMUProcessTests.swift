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

    /// The agent follows its boot's QEMU only when the command line is libvirt's for its domain.
    @Test func aCommandLineIsTheDomainsByItsNameAndGivesItsUUID() {
        let uuid = "0d5c1f6e-8f1c-4d7e-9a55-3f9ad1c2b7e1"
        let libvirts = ["/usr/bin/qemu-system-x86_64", "-name", "guest=machine-default-37eb33ef,debug-threads=on", "-S",
                        "-uuid", uuid, "-no-user-config"]
        #expect(QEMUProcess.identity(arguments: libvirts, domain: "machine-default-37eb33ef") == uuid)
        // Another domain whose name begins the same, a command line without a UUID, another program.
        #expect(QEMUProcess.identity(arguments: libvirts, domain: "machine-default-37eb33") == nil)
        #expect(QEMUProcess.identity(arguments: Array(libvirts.prefix(4)), domain: "machine-default-37eb33ef") == nil)
        #expect(QEMUProcess.identity(arguments: ["sleep", "-name", "guest=machine-default-37eb33ef", "-uuid"], domain: "machine-default-37eb33ef") == nil)
        #expect(QEMUProcess.running(domain: "machine-none-00000000", uri: "qemu:///system") == nil)
    }

    /// The libvirt helper's answers, as the agent reads them back.
    @Test func aSightingSurvivesTheHelpersOneLine() {
        let sightings: [DomainWatch.Sighting] = [.running, .paused, .stopped, .gone("its domain was defined anew"), .unknown("libvirt: no answer\tat all")]
        for sighting in sightings {
            #expect(DomainWatch.Sighting(encoded: sighting.encoded + "\n") == sighting)
        }
        #expect(DomainWatch.Sighting(encoded: "") == .unknown("the libvirt helper answered \"\""))
    }
}
