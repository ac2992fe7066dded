import FoundationEssentials
import HostOS

/// What this host can run, decided once for `machine` and for host setup alike
/// (`machine host-check`, which scripts/host-setup.sh asks): whether KVM boots the real guest
/// kernel, and whether libvirt's system daemon sees /dev/kvm the way that answer needs.
public struct HostCheck: Sendable {
    public let kvm: AcceleratorProbe.Verdict
    /// Whether the running system libvirtd could open /dev/kvm (nil: none runs, or we cannot
    /// look, as an ordinary user cannot).
    public let libvirtdSeesKVM: Bool?

    /// The accelerator `auto` gives machines here.
    public var accelerator: Accelerator { kvm.works ? .kvm : .tcg }

    /// True when libvirtd can use a /dev/kvm that does not run guests: it then re-probes QEMU's
    /// capabilities at every domain definition (34 s each measured here, 75 s on another host).
    public var libvirtdNeedsRestart: Bool { !kvm.works && libvirtdSeesKVM == true }

    /// What starts libvirtd and virtlogd where no systemd does, as a user can run it: the
    /// Debian package's `/usr/lib/machine/host-daemons` beside the binary, else a checkout's
    /// `scripts/host-setup.sh`.
    public static var setupCommand: String {
        let installed = AgentProcess.besideExecutable("../lib/machine/host-daemons")
        return FileManager.default.isExecutableFile(atPath: installed.path) ? installed.path : "scripts/host-setup.sh"
    }

    /// Probes KVM with the cached guest kernel when there is one (the firmware alone otherwise),
    /// and remembers a failure for this host boot as a start would.
    public static func run(paths: Paths) -> HostCheck {
        // Every suite boots the same kernel (DebianSuite): any latest image serves.
        let kernel = DebianSuite.all.lazy.compactMap {
            try? GuestImage(folder: Builder.latestLink(in: paths.images, suite: $0).resolvingSymlinksInPath())
        }.first?.kernel
        let verdict = AcceleratorProbe.probe(.kvm, kernel: kernel)
        if !verdict.works { AcceleratorProbe.rememberFailure(in: paths.kvmFailedVerdict) }
        return HostCheck(kvm: verdict, libvirtdSeesKVM: systemLibvirtdSeesKVM())
    }

    /// Whether the system libvirtd sees the real /dev/kvm, in its own mount namespace, rather
    /// than host setup's stand-in: a device node with /dev/null's numbers (1:3) that nobody may
    /// open (scripts/host-setup.sh's libvirtd_sees_kvm is this check in shell, for before machine
    /// is built). Where KVM does not run guests, a libvirtd that sees the real one re-probes QEMU
    /// at every definition, whatever the node's mode: on one host /dev/kvm was root's alone
    /// (0600), QEMU's user could not open it, and libvirt still re-probed. (A mask with /dev/null
    /// itself is worse than none: libvirt finds it openable, QEMU finds no KVM in it.)
    public static func systemLibvirtdSeesKVM() -> Bool? {
        guard HostUser.isRoot, let pid = pidOf("libvirtd") else { return nil }
        let path = "/proc/\(pid)/root/dev/kvm"
        guard HostPath.exists(path) else { return false }
        return HostPath.characterDevice(path) != UInt64(standInDevice)
    }

    /// makedev(1, 3), the stand-in's numbers.
    static let standInDevice: UInt = 0x103

    static func pidOf(_ command: String) -> Int32? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = Int32(entry),
                  let comm = try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8),
                  comm.trimmed() == command else { continue }
            return pid
        }
        return nil
    }
}
