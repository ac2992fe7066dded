import Foundation

/// Finds out whether KVM really runs guests. `/dev/kvm` existing is not enough: on some hosts
/// (nested virtualisation without vmx/svm) it opens but a KVM guest hangs. So the probe boots
/// a 64 KiB firmware whose reset vector writes one byte to QEMU's isa-debug-exit port; QEMU
/// then exits with status (0x21 << 1) | 1 = 67. Anything else within the time limit is a no.
public enum AcceleratorProbe {
    static let expectedExit: Int32 = 67

    public static func works(_ accelerator: Accelerator, timeout: Double = 5) -> Bool {
        if accelerator == .kvm && !FileManager.default.isWritableFile(atPath: "/dev/kvm") {
            return false
        }
        let firmware = FileManager.default.temporaryDirectory.appendingPathComponent("machine-probe-\(UUID().uuidString).bin")
        defer { try? FileManager.default.removeItem(at: firmware) }
        var image = Data(repeating: 0xf4, count: 65536)  // hlt everywhere
        // At the reset vector (0xFFFF0): mov al, 0x21; out 0xf4, al; hlt
        image.replaceSubrange(0xfff0..<0xfff5, with: [0xb0, 0x21, 0xe6, 0xf4, 0xf4])
        guard (try? image.write(to: firmware)) != nil else { return false }
        let result = try? Subprocess.run([
            // The same CPU model the domain gets: here KVM runs the default model but QEMU aborts
            // setting MSRs with -cpu host.
            "qemu-system-x86_64", "-accel", accelerator.rawValue, "-cpu", accelerator == .kvm ? "host" : "max",
            "-machine", "pc", "-nodefaults",
            "-display", "none", "-bios", firmware.path, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x01",
        ], timeout: timeout)
        return result?.status == expectedExit
    }

    /// What a failed probe depends on: this boot of the host, /dev/kvm itself (present or not,
    /// device, owner, mode, last change) and who asks. Any change probes again.
    public static func hostSignature() -> String {
        let bootID = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown-boot"
        var info = stat()
        let device = stat("/dev/kvm", &info) == 0
            ? "\(info.st_rdev):\(info.st_uid):\(info.st_gid):\(info.st_mode):\(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)"
            : "absent"
        var groups = [gid_t](repeating: 0, count: 256)
        let count = getgroups(Int32(groups.count), &groups)
        let user = "\(getuid()):\(getgid()):" + groups.prefix(max(0, Int(count))).map(String.init).joined(separator: ",")
        return "\(bootID) \(device) \(user)"
    }

    /// `auto`: KVM when it really works, else TCG (with a notice for the user). A failed KVM
    /// probe is remembered in `verdictFile` for as long as `hostSignature()` stays the same, so
    /// only the first start after a host boot (or a change to /dev/kvm) pays for it. A working
    /// KVM is probed every time: trusting a stale yes could hang a guest.
    public static func choose(_ preference: String, verdictFile: URL? = nil) throws(MachineError) -> (Accelerator, notice: String?) {
        switch preference {
        case "tcg":
            return (.tcg, nil)
        case "kvm":
            // Asked for explicitly: always probed, whatever `verdictFile` says.
            guard works(.kvm) else {
                throw MachineError("KVM does not work on this host (a test guest did not run)",
                                   hint: "use --accel tcg (slower, always works) or enable virtualisation for this host")
            }
            return (.kvm, nil)
        default:
            let notice = "KVM is not usable here; using QEMU's TCG emulation (slower)"
            let signature = hostSignature()
            if let verdictFile, (try? String(contentsOf: verdictFile, encoding: .utf8)) == signature {
                return (.tcg, notice)
            }
            if works(.kvm) { return (.kvm, nil) }
            if let verdictFile { try? AtomicFile.write(Data(signature.utf8), to: verdictFile) }
            return (.tcg, notice)
        }
    }
}
