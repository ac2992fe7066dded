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

    /// Whether `path` is a folder: following a symlink at its end, or not (`followingLinks`).
    public static func isFolder(_ path: String, followingLinks: Bool = true) -> Bool {
        var info = stat()
        let found = followingLinks ? stat(path, &info) : lstat(path, &info)
        return found == 0 && (info.st_mode & S_IFMT) == S_IFDIR
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
