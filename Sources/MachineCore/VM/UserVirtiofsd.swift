import FoundationEssentials
import HostOS
#if canImport(Glibc)
import Glibc  // virtiofsd is started with its descriptor limit raised and its socket passed by a pipe
#endif

/// virtiofsd for machines of libvirt's session daemon, which cannot start it (libvirt 9): machine
/// starts one per share before the domain, and the domain connects to its socket.
///
/// It runs in a user namespace the user owns. There the user is root, so virtiofsd's sandbox
/// (its own mount, pid and network namespaces), its setgroups and its per-request credential
/// switches work without privileges; the guest's other ids are the user's subordinate ids
/// (/etc/subuid, /etc/subgid), mapped by the setuid newuidmap/newgidmap of Debian's uidmap
/// package. A map of the user's own id alone would not do: the kernel then forbids setgroups,
/// which virtiofsd calls at start. So:
/// - the user's files are root's in the guest, and what a container writes as root is the
///   user's on the host, as with 9p;
/// - what a container writes as another id belongs to one of the user's subordinate ids (as
///   with rootless Podman), where 9p gives it to the user.
///
/// virtiofsd exits when QEMU closes its connection, so it lives and dies with the domain; the
/// pids file lets the next boot, `stop` and `rm` end one that QEMU never connected to.
public enum UserVirtiofsd {
    /// A user's first range of subordinate ids in /etc/subuid or /etc/subgid.
    public struct IdRange: Equatable, Sendable {
        public var start: UInt32
        public var count: UInt32

        public init(start: UInt32, count: UInt32) {
            self.start = start
            self.count = count
        }
    }

    static let uidMapper = "/usr/bin/newuidmap"
    static let gidMapper = "/usr/bin/newgidmap"
    static let unshare = "/usr/bin/unshare"

    /// The `OWNER:START:COUNT` lines of a subid file, in order.
    static func ranges(in text: String) -> [(owner: Substring, range: IdRange)] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count == 3, let start = UInt32(fields[1]), let count = UInt32(fields[2]) else { return nil }
            return (fields[0], IdRange(start: start, count: count))
        }
    }

    /// The first range for this user (by name or by uid) in a subid file.
    public static func subordinateRange(in text: String, user: String, id: UInt32) -> IdRange? {
        ranges(in: text).first { ($0.owner == user || $0.owner == "\(id)") && $0.range.count > 0 }?.range
    }

    /// The first id after every range in a subid file (100000, where useradd starts, if none).
    public static func freeStart(in text: String) -> UInt32 {
        ranges(in: text).reduce(UInt32(100_000)) { max($0, $1.range.start &+ $1.range.count) }
    }

    /// The ranges the running user may map, or why virtiofs cannot run as this user.
    public static func idRanges() -> Result<(uids: IdRange, gids: IdRange), MachineError> {
        let uid = getuid()
        let user = getpwuid(uid).map { String(cString: $0.pointee.pw_name) } ?? "\(uid)"
        guard access(uidMapper, X_OK) == 0, access(gidMapper, X_OK) == 0, access(unshare, X_OK) == 0 else {
            return .failure(MachineError("virtiofs as an ordinary user needs newuidmap and newgidmap, which are missing",
                                         hint: "as root: apt-get install uidmap (scripts/host-setup.sh does), or use --mount-type 9p", kind: .unavailable))
        }
        let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        guard let uids = subordinateRange(in: read("/etc/subuid"), user: user, id: uid),
              let gids = subordinateRange(in: read("/etc/subgid"), user: user, id: uid) else {
            let start = max(freeStart(in: read("/etc/subuid")), freeStart(in: read("/etc/subgid")))
            let range = "\(start)-\(start + 65535)"
            return .failure(MachineError("virtiofs as \(user) needs subordinate ids in /etc/subuid and /etc/subgid, and \(user) has none",
                                         hint: "as root: usermod --add-subuids \(range) --add-subgids \(range) \(user) (a range no one has yet), or use --mount-type 9p",
                                         kind: .unavailable))
        }
        return .success((uids, gids))
    }

    /// Starts virtiofsd serving `folder` on a socket at `socket` (made here, before the domain
    /// starts, so QEMU never finds nobody there); its pid. Its words go to `log`.
    public static func start(binary: String, folder: String, socket: String, log: String) throws(MachineError) -> pid_t {
        let ranges: (uids: IdRange, gids: IdRange)
        switch idRanges() {
        case let .success(found): ranges = found
        case let .failure(error): throw error
        }
        let listener: Int32
        do {
            listener = try LocalSocket.listenUnix(socket)
        } catch {
            throw MachineError("cannot make virtiofsd's socket: \(error)")
        }
        defer { close(listener) }
        // virtiofsd accepts on it blocking, after an exec: both flags off.
        _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) & ~O_NONBLOCK)
        _ = fcntl(listener, F_SETFD, 0)
        var go: [Int32] = [-1, -1]
        guard pipe(&go) == 0 else { throw MachineError("cannot start virtiofsd: \(String(cString: strerror(errno)))") }
        defer { close(go[0]); if go[1] >= 0 { close(go[1]) } }
        // The shell waits in the new namespace until its ids are mapped, then becomes virtiofsd
        // (whose capabilities there are computed at that exec, as root's).
        // It keeps a descriptor open for every inode the guest holds, and on its own asks for
        // a million, which only root gets: the user's hard limit is what it may have (a guest
        // holding more of the tree than that sees EMFILE; `ulimit -Hn` raises it).
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let argv = [unshare, "--user", "--", "/bin/sh", "-c", "read go && exec \"$@\"", "virtiofsd",
                    binary, "--fd=\(listener)", "--rlimit-nofile=\(min(limit.rlim_max, 1_000_000))",
                    "-o", "source=\(folder)", "-o", "sandbox=namespace", "-o", "cache=auto"]
        let pid: pid_t
        do {
            var options = Spawn.Options(output: log, append: true, newSession: true, searchPath: false)
            options.input = go[0]
            options.keep = [listener]
            pid = try Spawn.start(argv, options)
        } catch {
            throw MachineError("cannot start virtiofsd: \(error)")
        }
        do throws(MachineError) {
            try waitForNamespace(pid, log: log)
            for (mapper, own, range) in [(uidMapper, getuid(), ranges.uids), (gidMapper, getgid(), ranges.gids)] {
                // Guest id 0 is the user; guest ids from 1 on are the subordinate range.
                let count = min(range.count, 65535)
                let argv = [mapper, "\(pid)", "0", "\(own)", "1", "1", "\(range.start)", "\(count)"]
                let result: Subprocess.Result
                do { result = try Subprocess.run(argv, timeout: 10) } catch { throw MachineError("cannot run \(mapper): \(error)") }
                guard result.status == 0 else {
                    throw MachineError("\(mapper) refused the ids for virtiofsd: \(result.output.trimmed())",
                                       hint: "check your lines in /etc/subuid and /etc/subgid, or use --mount-type 9p")
                }
            }
            guard write(go[1], "go\n", 3) == 3 else { throw MachineError("cannot start virtiofsd: its namespace's shell went away") }
        } catch {
            kill(pid, SIGKILL)
            _ = waitpid(pid, nil, 0)
            throw error
        }
        return pid
    }

    /// Waits (up to 5 s) until the child has its own user namespace, which unshare makes
    /// before it runs the shell: only then can its ids be mapped.
    static func waitForNamespace(_ pid: pid_t, log: String) throws(MachineError) {
        let ours = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/user")
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                let words = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").last.map(String.init) ?? ""
                throw MachineError("virtiofsd's user namespace could not be made: \(words)",
                                   hint: "user namespaces may be off here (sysctl kernel.unprivileged_userns_clone=1); or use --mount-type 9p")
            }
            if let theirs = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/user"), theirs != ours {
                return
            }
            usleep(5_000)
        }
        throw MachineError("virtiofsd's user namespace did not appear within 5 s")
    }

    /// Ends the virtiofsd processes a pids file names (each with its start time, so a pid the
    /// kernel has since given to another process is left alone), and removes the file.
    public static func stopAll(pidsFile: URL) {
        for pid in running(pidsFile: pidsFile).values { kill(pid, SIGTERM) }
        try? FileManager.default.removeItem(at: pidsFile)
    }

    /// The processes in the file that still run, by the tag of the share each serves:
    /// "PID STARTTIME TAG" lines.
    public static func running(pidsFile: URL) -> [String: pid_t] {
        guard let text = try? String(contentsOf: pidsFile, encoding: .utf8) else { return [:] }
        var found: [String: pid_t] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 3, let pid = pid_t(fields[0]), startTime(of: pid) == String(fields[1]) else { continue }
            found[String(fields[2])] = pid
        }
        return found
    }

    /// The pids file's line for a process just started to serve the share tagged `tag`.
    public static func pidsLine(_ pid: pid_t, tag: String) -> String {
        "\(pid) \(startTime(of: pid) ?? "?") \(tag)\n"
    }

    /// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
    static func startTime(of pid: pid_t) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // Fields after the command's ")" start at the state, field 3.
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : nil
    }
}
