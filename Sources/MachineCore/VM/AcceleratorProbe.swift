import FoundationEssentials
import HostOS

/// Finds out whether KVM really runs guests. `/dev/kvm` existing is not enough. On some hosts
/// (nested virtualisation without vmx/svm) it opens but nothing runs. On others a tiny firmware
/// runs but the real guest kernel dies at once ("KVM internal error ... emulation failure" on a
/// `lock cmpxchg16b`; QEMU leaves the domain paused). So the probe runs in two steps:
/// 1. a 64 KiB firmware whose reset vector writes one byte to QEMU's isa-debug-exit port, so
///    QEMU exits with status (0x21 << 1) | 1 = 67 (a tenth of a second; answers "no" on the
///    first kind of host);
/// 2. when a guest kernel is at hand, that kernel itself, with the domain's CPU model, told to
///    reboot on the panic it reaches when it finds no root filesystem: QEMU exits by itself
///    only if the kernel ran its whole start-up under KVM (well under a second where KVM works).
public enum AcceleratorProbe {
    static let expectedExit: Int32 = 67

    /// What a probe found, with QEMU's own words when it was a no.
    public struct Verdict: Sendable, Equatable {
        public let works: Bool
        public let reason: String
    }

    /// For tests only: the probe says yes and domains are defined for TCG under KVM's name, so
    /// a test can stop such a guest at boot (as a broken KVM does) and watch the fallback. Only
    /// in debug builds (the ones the tests run): a release binary, what users install, never
    /// reports a TCG guest as KVM whatever its environment says.
    public static var pretendsKVM: Bool {
        #if DEBUG
        return ProcessInfo.processInfo.environment["MACHINE_TEST_PRETEND_KVM"] == "1"
        #else
        return false
        #endif
    }

    public static func works(_ accelerator: Accelerator, kernel: URL? = nil, timeout: Double = 5) -> Bool {
        probe(accelerator, kernel: kernel, timeout: timeout).works
    }

    public static func probe(_ accelerator: Accelerator, kernel: URL? = nil, timeout: Double = 5) -> Verdict {
        if accelerator == .kvm && pretendsKVM { return Verdict(works: true, reason: "MACHINE_TEST_PRETEND_KVM=1") }
        if accelerator == .kvm && !FileManager.default.isWritableFile(atPath: "/dev/kvm") {
            return Verdict(works: false, reason: FileManager.default.fileExists(atPath: "/dev/kvm")
                ? "/dev/kvm is not writable by this user" : "there is no /dev/kvm")
        }
        let firmware = FileManager.default.temporaryDirectory.appendingPathComponent("machine-probe-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: firmware) }
        var image = Data(repeating: 0xf4, count: 65536)  // hlt everywhere
        // At the reset vector (0xFFFF0): mov al, 0x21; out 0xf4, al; hlt
        image.replaceSubrange(0xfff0..<0xfff5, with: [0xb0, 0x21, 0xe6, 0xf4, 0xf4])
        guard (try? image.write(to: firmware)) != nil else { return Verdict(works: false, reason: "cannot write the probe's firmware") }
        // The same CPU model the domain gets (DomainDefinition): here KVM ran the default model
        // but QEMU aborted setting MSRs with -cpu host.
        let cpu = accelerator == .kvm ? "host" : "max"
        let first = try? Subprocess.run([
            "qemu-system-x86_64", "-accel", accelerator.rawValue, "-cpu", cpu, "-machine", "pc", "-nodefaults",
            "-display", "none", "-bios", firmware.path, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x01",
        ], timeout: timeout)
        guard let first, first.status == expectedExit else {
            return Verdict(works: false, reason: qemuReason(first, timeout: timeout, what: "a test firmware"))
        }
        guard let kernel, FileManager.default.fileExists(atPath: kernel.path) else {
            return Verdict(works: true, reason: "a test firmware ran")
        }
        let started = Date()
        let second = try? Subprocess.run([
            "qemu-system-x86_64", "-accel", accelerator.rawValue, "-cpu", cpu, "-machine", "q35", "-m", "256",
            "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio", "-kernel", kernel.path,
            "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent",
        ], timeout: timeout)
        guard let second, !second.timedOut, second.output.contains("Kernel panic") else {
            return Verdict(works: false, reason: qemuReason(second, timeout: timeout, what: "the guest kernel"))
        }
        return Verdict(works: true, reason: String(cFormat: "the guest kernel started under it in %.1f s", Date().timeIntervalSince(started)))
    }

    /// QEMU's error line from a failed probe, or what it did instead.
    static func qemuReason(_ result: Subprocess.Result?, timeout: Double, what: String) -> String {
        guard let result else { return "qemu-system-x86_64 could not be run" }
        let lines = result.output.split(whereSeparator: \.isNewline).map { $0.trimmed() }
        if let error = lines.first(where: { $0.lowercased().contains("error") || $0.hasPrefix("qemu-system") }) {
            return "QEMU: \(error)"
        }
        return result.timedOut ? "\(what) did not finish within \(Int(timeout)) s" : "QEMU exited \(result.status) running \(what)"
    }

    /// What a failed probe depends on: this boot of the host, /dev/kvm itself (present or not,
    /// device, owner, mode, last change) and who asks. Any change probes again.
    public static func hostSignature() -> String {
        let bootID = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmed() ?? "unknown-boot"
        return "\(bootID) \(HostPath.signature("/dev/kvm") ?? "absent") \(HostUser.credentials)"
    }

    /// Remembers that KVM failed on this host as it is now (after a failed probe, or a guest
    /// that KVM crashed), so later starts go straight to TCG.
    public static func rememberFailure(in verdictFile: URL?) {
        if let verdictFile { try? AtomicFile.write(Data(hostSignature().utf8), to: verdictFile) }
    }

    /// Whether KVM is known to have failed on this host as it is now.
    public static func knownToFail(_ verdictFile: URL?) -> Bool {
        guard let verdictFile else { return false }
        return (try? String(contentsOf: verdictFile, encoding: .utf8)) == hostSignature()
    }

    /// `auto`: KVM when it really works, else TCG (with a notice for the user). A failed KVM
    /// probe is remembered in `verdictFile` for as long as `hostSignature()` stays the same, so
    /// only the first start after a host boot (or a change to /dev/kvm) pays for it. A working
    /// KVM is probed every time: trusting a stale yes could hang a guest.
    public static func choose(_ preference: String, verdictFile: URL? = nil, kernel: URL? = nil) throws(MachineError) -> (Accelerator, notice: String?) {
        switch preference {
        case "tcg":
            return (.tcg, nil)
        case "kvm":
            // Asked for explicitly: always probed, whatever `verdictFile` says.
            let verdict = probe(.kvm, kernel: kernel)
            guard verdict.works else {
                throw MachineError("KVM does not run guests on this host: \(verdict.reason)",
                                   hint: "use --accel tcg (slower, always works; `machine up --accel tcg` switches an existing machine), or enable virtualisation for this host")
            }
            return (.kvm, nil)
        default:
            let notice = "KVM is not usable here; using QEMU's TCG emulation (slower)"
            if knownToFail(verdictFile) { return (.tcg, notice) }
            let verdict = probe(.kvm, kernel: kernel)
            if verdict.works { return (.kvm, nil) }
            rememberFailure(in: verdictFile)
            return (.tcg, "KVM is not usable here (\(verdict.reason)); using QEMU's TCG emulation (slower)")
        }
    }

    /// The choice for a remote libvirt host, from what its libvirt says it can run (its
    /// capabilities); a KVM that fails there at boot is fallen back from as locally, but not
    /// remembered, since this host's verdict is not that host's.
    public static func chooseRemote(_ preference: String, capabilities: String, host: String) throws(MachineError) -> (Accelerator, notice: String?) {
        let offersKVM = capabilities.contains("<domain type='kvm'") || capabilities.contains("<domain type=\"kvm\"")
        switch preference {
        case "tcg":
            return (.tcg, nil)
        case "kvm":
            guard offersKVM else {
                throw MachineError("libvirt on \(host) offers no KVM", hint: "use --accel tcg (slower), or enable KVM on \(host)")
            }
            return (.kvm, nil)
        default:
            return offersKVM ? (.kvm, nil) : (.tcg, "libvirt on \(host) offers no KVM; using QEMU's TCG emulation there (slower)")
        }
    }
}
