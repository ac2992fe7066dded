import FoundationEssentials
import HostOS

/// Shares as users write them (`--mount HOSTPATH[:GUESTPATH][:ro][:noinotify]`) and the
/// checks they pass on this host: the folder exists and stays a folder, the guest path leaves
/// the guest's own files alone, nothing of machine's own state is reachable. How they reach
/// the guest is in ShareTransports.
public enum Shares {
    /// The default: the user's home folder, read-write, at the same path.
    public static func defaults(home: String = Paths.userHome().path) throws(MachineError) -> [Share] {
        [try resolve(spec: home)]
    }

    /// Parses and checks `HOSTPATH[:GUESTPATH][:ro|rw][:noinotify]` (the options in any order):
    /// the host folder must exist; the guest path must not cover the guest's own system folders.
    public static func resolve(spec: String, currentDirectory: String = FileManager.default.currentDirectoryPath,
                               home: String = Paths.userHome().path) throws(MachineError) -> Share {
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
        let canonical: String
        switch HostPath.resolved(path) {
        case .success(let resolved): canonical = resolved
        case .failure(let error):
            throw MachineError("cannot share \(path): \(HostPath.reason(error.code))",
                               hint: "give a folder that exists (create it first, or fix the path in --mount \(spec))", kind: .usage)
        }
        guard HostPath.isFolder(canonical) else {
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
            guard canonical(share.hostPath) == share.hostPath, HostPath.isFolder(share.hostPath, followingLinks: false) else {
                throw MachineError("the shared folder \(share.hostPath) is gone or is no longer a plain folder (a symlink now?)",
                                   hint: "recreate it, or change the machine's shares: `machine up \(machine) --mount ...` (or --no-mounts)")
            }
        }
    }

    /// Guest paths of host folders that hold `machine`'s own state (keys, disks) and happen to
    /// lie inside a share, e.g. ~/.machine in the shared home: the guest covers them, so
    /// containers mounting the home cannot read the machine's SSH key or touch its disk.
    public static func hiddenGuestPaths(_ shares: [Share], machineHome: String) -> [String] {
        let home = canonical(machineHome)
        return shares.compactMap { share in
            guard home == share.hostPath || home.hasPrefix(share.hostPath == "/" ? "/" : share.hostPath + "/") else { return nil }
            let relative = String(home.dropFirst(share.hostPath.count)).trimming("/")
            return relative.isEmpty ? nil : share.guestPath + "/" + relative
        }
    }

    /// The path with symlinks resolved, or itself when it does not exist.
    static func canonical(_ path: String) -> String {
        HostPath.canonical(path)
    }

    static func depth(_ path: String) -> Int {
        path.split(separator: "/").count
    }
}
