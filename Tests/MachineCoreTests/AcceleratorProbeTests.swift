import Foundation
import MachineCore
import Testing

@Suite struct AcceleratorProbeTests {
    // TCG always runs the probe's firmware: this proves the probe itself works, so a "no"
    // for KVM means KVM, not a broken probe.
    @Test func tcgRunsTheProbeGuest() {
        #expect(AcceleratorProbe.works(.tcg))
    }

    @Test func autoFallsBackToTCGWithANoticeWhenKVMDoesNotRun() throws {
        let (accelerator, notice) = try AcceleratorProbe.choose("auto")
        if AcceleratorProbe.works(.kvm) {
            #expect(accelerator == .kvm)
        } else {
            #expect(accelerator == .tcg)
            #expect(notice?.contains("TCG") == true)
        }
    }

    @Test func aFailedKVMProbeIsRememberedOnlyForThisHostState() throws {
        let verdict = FileManager.default.temporaryDirectory.appendingPathComponent("kvm-verdict-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: verdict) }
        // A verdict from another boot or another /dev/kvm is not trusted: the probe runs.
        try Data("another-boot absent 0:0:".utf8).write(to: verdict)
        let kvmWorks = AcceleratorProbe.works(.kvm)
        let (first, _) = try AcceleratorProbe.choose("auto", verdictFile: verdict)
        #expect(first == (kvmWorks ? .kvm : .tcg))
        let stored = try String(contentsOf: verdict, encoding: .utf8)
        if kvmWorks {
            #expect(stored == "another-boot absent 0:0:")  // a working KVM is never cached
        } else {
            #expect(stored == AcceleratorProbe.hostSignature())
            #expect(stored.contains(try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)))
            let (again, notice) = try AcceleratorProbe.choose("auto", verdictFile: verdict)
            #expect(again == .tcg && notice?.contains("TCG") == true)
        }
        // An explicit --accel kvm always probes, whatever is remembered.
        if kvmWorks {
            #expect(try AcceleratorProbe.choose("kvm", verdictFile: verdict).0 == .kvm)
        } else {
            #expect(throws: MachineError.self) { try AcceleratorProbe.choose("kvm", verdictFile: verdict) }
        }
    }
}
