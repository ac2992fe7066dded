#if canImport(Glibc)
import Glibc
#endif

/// What a path on this host is: its canonical form and its kind, without the callers
/// reaching for realpath(3) and stat(2) themselves.
public enum HostPath {
    /// The path with every symlink resolved; the error of realpath(3) when it cannot be.
    public static func resolved(_ path: String) -> Result<String, SystemError> {
        guard let resolved = realpath(path, nil) else { return .failure(.last("resolve \(path)")) }
        defer { free(resolved) }
        return .success(String(cString: resolved))
    }

    /// The path with symlinks resolved, or itself when it does not exist.
    public static func canonical(_ path: String) -> String {
        (try? resolved(path).get()) ?? path
    }

    /// What stat(2) says of `path`, or lstat(2) when not `followingLinks`; nil when nothing is there.
    private static func status(_ path: String, followingLinks: Bool = true) -> stat? {
        var info = stat()
        return (followingLinks ? stat(path, &info) : lstat(path, &info)) == 0 ? info : nil
    }

    /// Whether `path` is a folder: following a symlink at its end, or not (`followingLinks`).
    public static func isFolder(_ path: String, followingLinks: Bool = true) -> Bool {
        status(path, followingLinks: followingLinks).map { ($0.st_mode & S_IFMT) == S_IFDIR } ?? false
    }

    /// Whether anything is at `path`: following a symlink at its end, or not (a dangling link
    /// is something).
    public static func exists(_ path: String, followingLinks: Bool = true) -> Bool {
        status(path, followingLinks: followingLinks) != nil
    }

    /// Whether `path` is a regular file: following a symlink at its end, or not (`followingLinks`).
    public static func isRegularFile(_ path: String, followingLinks: Bool = true) -> Bool {
        status(path, followingLinks: followingLinks).map { ($0.st_mode & S_IFMT) == S_IFREG } ?? false
    }

    /// The size of the file at `path` in bytes (0 when it cannot be read).
    public static func size(_ path: String) -> UInt64 {
        status(path).map { UInt64($0.st_size) } ?? 0
    }

    /// The device number of the character device at `path` (following links); nil when there
    /// is none or it is something else.
    public static func characterDevice(_ path: String) -> UInt64? {
        guard let info = status(path), (info.st_mode & S_IFMT) == S_IFCHR else { return nil }
        return UInt64(info.st_rdev)
    }

    /// What identifies the node at `path` as it is now: device numbers, owner, group, mode and
    /// the time of its last change; nil when there is none. Any change to it changes this.
    public static func signature(_ path: String) -> String? {
        status(path).map { "\($0.st_rdev):\($0.st_uid):\($0.st_gid):\($0.st_mode):\($0.st_ctim.tv_sec).\($0.st_ctim.tv_nsec)" }
    }

    /// Makes `link` a symlink to `target` in one rename, replacing whatever link was there
    /// (readers see the old link or the new one, never none).
    public static func replaceLink(_ link: String, pointingTo target: String) throws(SystemError) {
        let temporary = link + ".new.\(getpid())"
        unlink(temporary)
        guard symlink(target, temporary) == 0, Glibc.rename(temporary, link) == 0 else {
            let error = SystemError.last("point \(link) at \(target)")
            unlink(temporary)
            throw error
        }
    }

    /// rename(2): `from` takes the place of `to` in one step (replacing a file, or an empty folder).
    public static func rename(_ from: String, to: String) throws(SystemError) {
        guard Glibc.rename(from, to) == 0 else { throw .last("move \(from) to \(to)") }
    }

    /// mkdir(2) of one folder with `mode`; an existing one is an error (EEXIST).
    public static func makeFolder(_ path: String, mode: UInt32) throws(SystemError) {
        guard mkdir(path, mode_t(mode)) == 0 else { throw .last("make \(path)") }
    }

    /// Whether this process may run the file at `path`.
    public static func isExecutable(_ path: String) -> Bool {
        access(path, X_OK) == 0
    }

    /// The words of errno `code` ("No such file or directory").
    public static func reason(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}
