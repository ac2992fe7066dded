import FoundationEssentials
import HostOS

/// How shares reach the guest: the device each becomes (virtiofs started by libvirt or by
/// machine, or QEMU's 9p), and the seed's list of what the guest mounts.
extension Shares {
    /// Picks how shares are served:
    /// - with libvirt's system daemon, virtiofs started by libvirt, for root only (virtiofsd
    ///   runs as root there, so for anyone else a container's files would be owned by root);
    /// - with the session daemon, which cannot start virtiofsd (libvirt 9), virtiofs started by
    ///   machine in the user's own user namespace (UserVirtiofsd), when the host has newuidmap
    ///   and the user subordinate ids; `machineFolder` holds its sockets;
    /// - 9p otherwise, and always for read-only shares: only QEMU's 9p server refuses writes on
    ///   the host side (libvirt 9 has no read-only virtiofs).
    public static func devices(_ shares: [Share], type: ShareType, systemDaemon: Bool, machineFolder: URL,
                               isRoot: Bool = HostUser.isRoot, virtiofsd: String? = findVirtiofsd(),
                               userNamespace: () -> MachineError? = Shares.userNamespaceProblem) throws(MachineError) -> [SharedFolder] {
        enum Choice { case ninep, libvirt, own }
        var choice = Choice.ninep
        switch type {
        case .ninep:
            break
        case .auto:
            if virtiofsd != nil {
                if systemDaemon {
                    choice = isRoot ? .libvirt : .ninep
                } else {
                    choice = !isRoot && userNamespace() == nil ? .own : .ninep
                }
            }
        case .virtiofs:
            guard virtiofsd != nil else {
                throw MachineError("virtiofsd is not installed (looked for \(virtiofsdCandidates.joined(separator: ", ")))",
                                   hint: "install it: apt-get install qemu-system-common (or the virtiofsd package), or use --mount-type 9p", kind: .unavailable)
            }
            if systemDaemon {
                guard isRoot else {
                    throw MachineError("virtiofs shares on libvirt's system daemon are only offered to root: virtiofsd runs as root there, so files containers write would be owned by root",
                                       hint: "use qemu:///session (the default for you), where machine runs virtiofsd as you; or --mount-type 9p", kind: .usage)
                }
                choice = .libvirt
            } else {
                guard !isRoot else {
                    throw MachineError("virtiofs on libvirt's session daemon is for ordinary users; root's machines use the system daemon",
                                       hint: "drop --connect qemu:///session, or use --mount-type 9p", kind: .usage)
                }
                if let problem = userNamespace() { throw problem }
                choice = .own
            }
        }
        return shares.enumerated().map { index, share in
            let tag = "machine-share\(index)"
            let transport: SharedFolder.Transport
            switch (choice, share.readOnly) {
            case (.libvirt, false): transport = .virtiofs(binary: virtiofsd!)
            case (.own, false):
                transport = .userVirtiofs(binary: virtiofsd!, socket: MachineFiles(folder: machineFolder).virtiofsSocket(index).path)
            default: transport = .ninep
            }
            return SharedFolder(tag: tag, share: share, transport: transport)
        }
    }

    /// Why machine cannot run virtiofsd as this user, or nil.
    public static func userNamespaceProblem() -> MachineError? {
        if case let .failure(problem) = UserVirtiofsd.idRanges() { return problem }
        return nil
    }

    static let virtiofsdCandidates = ["/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"]

    public static func findVirtiofsd() -> String? {
        virtiofsdCandidates.first(where: HostPath.isExecutable)
    }

    /// The seed's `mounts` file: per line, the fields GuestContract.mountsFields names (tag,
    /// guest path, virtiofs or 9p, rw or ro), tab-separated.
    public static func seedMounts(_ devices: [SharedFolder]) -> String {
        devices.map { device in
            let fields = ["tag": device.tag, "path": device.share.guestPath, "type": device.typeName, "mode": device.share.readOnly ? "ro" : "rw"]
            return GuestContract.mountsFields.map { fields[$0] ?? "" }.joined(separator: "\t") + "\n"
        }.joined()
    }
}
