import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A host folder shared into the guest (`--mount HOSTPATH[:GUESTPATH][:ro]`).
public struct Share: Codable, Sendable, Equatable {
    /// The folder's canonical path (symlinks resolved when it was added).
    public var hostPath: String
    /// Where the guest mounts it: the same path as on the host unless the user chose another.
    public var guestPath: String
    public var readOnly: Bool
    /// Whether host edits raise inotify events in the guest (read-write shares; `:noinotify`
    /// turns it off, for a tree too big to watch or one nobody watches).
    public var inotify: Bool

    public init(hostPath: String, guestPath: String, readOnly: Bool = false, inotify: Bool = true) {
        self.hostPath = hostPath
        self.guestPath = guestPath
        self.readOnly = readOnly
        self.inotify = inotify
    }

    enum CodingKeys: String, CodingKey { case hostPath, guestPath, readOnly, inotify }

    // Configs from before `inotify` existed have none: on, as for a new share.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        hostPath = try container.decode(String.self, forKey: .hostPath)
        guestPath = try container.decode(String.self, forKey: .guestPath)
        readOnly = try container.decode(Bool.self, forKey: .readOnly)
        inotify = try container.decodeIfPresent(Bool.self, forKey: .inotify) ?? true
    }

    // Written only when off, so a share reads as the user wrote it (and as configs always had).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(hostPath, forKey: .hostPath)
        try container.encode(guestPath, forKey: .guestPath)
        try container.encode(readOnly, forKey: .readOnly)
        if !inotify { try container.encode(inotify, forKey: .inotify) }
    }
}

/// How shares reach the guest (`--mount-type`).
public enum ShareType: String, Codable, Sendable, CaseIterable {
    /// virtiofs when the connection and the host can run it, else 9p.
    case auto
    case virtiofs
    case ninep = "9p"
}

/// One share as a device of the domain: the tag the guest mounts and how it is served.
public struct SharedFolder: Sendable, Equatable {
    public enum Transport: Sendable, Equatable {
        /// virtio-fs, served by this virtiofsd binary (libvirt starts it).
        case virtiofs(binary: String)
        /// virtio-fs for a session machine: machine starts this virtiofsd in a user namespace,
        /// listening on `socket` (UserVirtiofsd).
        case userVirtiofs(binary: String, socket: String)
        /// virtio-9p, served by QEMU itself.
        case ninep
    }

    public var tag: String
    public var share: Share
    public var transport: Transport

    public init(tag: String, share: Share, transport: Transport) {
        self.tag = tag
        self.share = share
        self.transport = transport
    }

    public var typeName: String {
        switch transport {
        case .virtiofs, .userVirtiofs: return "virtiofs"
        case .ninep: return "9p"
        }
    }
}

public enum Shares {
    /// The default: the user's home folder, read-write, at the same path.
    public static func defaults(home: String = NSHomeDirectory()) throws(MachineError) -> [Share] {
        [try resolve(spec: home)]
    }

    /// Parses and checks `HOSTPATH[:GUESTPATH][:ro|rw][:noinotify]` (the options in any order):
    /// the host folder must exist; the guest path must not cover the guest's own system folders.
    public static func resolve(spec: String, currentDirectory: String = FileManager.default.currentDirectoryPath,
                               home: String = NSHomeDirectory()) throws(MachineError) -> Share {
        var parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var readOnly = false
        var inotify = true
        while parts.count > 1, let last = parts.last, ["ro", "rw", "noinotify"].contains(last) {
            if last == "noinotify" { inotify = false } else { readOnly = last == "ro" }
            parts.removeLast()
        }
        guard (1...2).contains(parts.count), !parts[0].isEmpty, parts.count == 1 || !parts[1].isEmpty else {
            throw MachineError("invalid --mount \"\(spec)\"",
                               hint: "write HOSTPATH[:GUESTPATH][:ro][:noinotify], e.g. --mount ~/src or --mount ~/data:/data:ro (paths cannot contain ':')", kind: .usage)
        }
        let hostPath = try canonicalFolder(expand(parts[0], currentDirectory: currentDirectory, home: home), spec: spec)
        let guestPath = parts.count == 2 ? try guestFolder(parts[1]) : try guestFolder(hostPath)
        return Share(hostPath: hostPath, guestPath: guestPath, readOnly: readOnly, inotify: inotify)
    }

    /// Checks a list as a whole: no guest path used twice, nothing inside machine's own state
    /// folder (it holds the SSH keys). Outer folders come first, so a share inside another
    /// is mounted after it.
    public static func checked(_ shares: [Share], machineHome: String) throws(MachineError) -> [Share] {
        var seen = Set<String>()
        let home = canonical(machineHome)
        for share in shares {
            guard seen.insert(share.guestPath).inserted else {
                throw MachineError("two shares are mounted at \(share.guestPath) in the guest", hint: "give one of them another guest path: --mount HOSTPATH:GUESTPATH", kind: .usage)
            }
            if share.hostPath == home || share.hostPath.hasPrefix(home + "/") {
                throw MachineError("cannot share \(share.hostPath): it is inside \(home), where machine keeps its SSH keys and disks",
                                   hint: "share another folder", kind: .usage)
            }
        }
        return shares.sorted { depth($0.guestPath) < depth($1.guestPath) }
    }

    /// Guest folders a share must not cover: the guest's own system, and where it keeps
    /// the engine, SSH keys and the data disk.
    static let reservedGuestPaths = ["/bin", "/sbin", "/lib", "/lib64", "/usr", "/etc", "/proc", "/sys", "/dev", "/run",
                                     "/boot", "/var/lib/docker", "/var/lib/machine", "/var/run", "/var/log", "/mnt/data"]

    static func guestFolder(_ path: String) throws(MachineError) -> String {
        guard DomainDefinition.isRepresentable(path: path) else {
            throw MachineError("the guest path \"\(path)\" must be absolute, without control characters", kind: .usage)
        }
        let components = path.split(separator: "/").map(String.init)
        guard !components.contains("."), !components.contains("..") else {
            throw MachineError("the guest path \"\(path)\" must not contain . or ..", kind: .usage)
        }
        let normalized = "/" + components.joined(separator: "/")
        if normalized == "/" || reservedGuestPaths.contains(where: { normalized == $0 || normalized.hasPrefix($0 + "/") }) {
            throw MachineError("a share cannot be mounted at \(normalized) in the guest: the guest's own files are there",
                               hint: "give it another guest path: --mount HOSTPATH:/some/other/path", kind: .usage)
        }
        return normalized
    }

    static func expand(_ path: String, currentDirectory: String, home: String) -> String {
        var path = path
        if path == "~" { path = home } else if path.hasPrefix("~/") { path = home + path.dropFirst(1) }
        if !path.hasPrefix("/") { path = currentDirectory + "/" + path }
        return path
    }

    static func canonicalFolder(_ path: String, spec: String) throws(MachineError) -> String {
        guard let resolved = realpath(path, nil) else {
            throw MachineError("cannot share \(path): \(String(cString: strerror(errno)))",
                               hint: "give a folder that exists (create it first, or fix the path in --mount \(spec))", kind: .usage)
        }
        defer { free(resolved) }
        let canonical = String(cString: resolved)
        var info = stat()
        guard stat(canonical, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw MachineError("cannot share \(path): it is not a folder", hint: "share the folder that holds it", kind: .usage)
        }
        guard DomainDefinition.isRepresentable(path: canonical) else {
            throw MachineError("cannot share \(path): its path contains control characters", kind: .usage)
        }
        return canonical
    }

    /// Before a boot: every share must still be the folder it was, not something the guest
    /// (through another share) swapped for a symlink to elsewhere.
    public static func verifyBeforeBoot(_ shares: [Share], machine: String) throws(MachineError) {
        for share in shares {
            var info = stat()
            guard canonical(share.hostPath) == share.hostPath, lstat(share.hostPath, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
                throw MachineError("the shared folder \(share.hostPath) is gone or is no longer a plain folder (a symlink now?)",
                                   hint: "recreate it, or change the machine's shares: `machine up \(machine) --mount ...` (or --no-mounts)")
            }
        }
    }

    /// Picks how shares are served:
    /// - with libvirt's system daemon, virtiofs started by libvirt, for root only (virtiofsd
    ///   runs as root there, so for anyone else a container's files would be owned by root);
    /// - with the session daemon, which cannot start virtiofsd (libvirt 9), virtiofs started by
    ///   machine in the user's own user namespace (UserVirtiofsd), when the host has newuidmap
    ///   and the user subordinate ids; `machineFolder` holds its sockets;
    /// - 9p otherwise, and always for read-only shares: only QEMU's 9p server refuses writes on
    ///   the host side (libvirt 9 has no read-only virtiofs).
    public static func devices(_ shares: [Share], type: ShareType, systemDaemon: Bool, machineFolder: URL,
                               isRoot: Bool = getuid() == 0, virtiofsd: String? = findVirtiofsd(),
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
        virtiofsdCandidates.first { access($0, X_OK) == 0 }
    }

    /// The seed's `mounts` file: per line, the fields GuestContract.mountsFields names (tag,
    /// guest path, virtiofs or 9p, rw or ro), tab-separated.
    public static func seedMounts(_ devices: [SharedFolder]) -> String {
        devices.map { device in
            let fields = ["tag": device.tag, "path": device.share.guestPath, "type": device.typeName, "mode": device.share.readOnly ? "ro" : "rw"]
            return GuestContract.mountsFields.map { fields[$0] ?? "" }.joined(separator: "\t") + "\n"
        }.joined()
    }

    /// Guest paths of host folders that hold `machine`'s own state (keys, disks) and happen to
    /// lie inside a share, e.g. ~/.machine in the shared home: the guest covers them, so
    /// containers mounting the home cannot read the machine's SSH key or touch its disk.
    public static func hiddenGuestPaths(_ shares: [Share], machineHome: String) -> [String] {
        let home = canonical(machineHome)
        return shares.compactMap { share in
            guard home == share.hostPath || home.hasPrefix(share.hostPath == "/" ? "/" : share.hostPath + "/") else { return nil }
            let relative = String(home.dropFirst(share.hostPath.count)).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            return relative.isEmpty ? nil : share.guestPath + "/" + relative
        }
    }

    /// The path with symlinks resolved, or itself when it does not exist.
    static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func depth(_ path: String) -> Int {
        path.split(separator: "/").count
    }
}
