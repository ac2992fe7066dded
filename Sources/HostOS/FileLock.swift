#if canImport(Glibc)
import Glibc
#endif

/// An advisory lock on a file (flock), held through one open file: released when this goes,
/// and by the kernel when the process dies, so a crash never leaves a lock behind.
public final class FileLock {
    /// The open file the lock is held through (the agent's lifeline checks its inode).
    public let fd: Int32

    private init(fd: Int32) {
        self.fd = fd
    }

    /// Takes the exclusive lock of `path` (made with `mode` when missing) without waiting;
    /// nil while another holds it.
    public static func tryExclusive(_ path: String, mode: UInt32 = 0o600) throws(SystemError) -> FileLock? {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .last("open \(path)") }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            let error = errno
            close(fd)
            if error == EWOULDBLOCK { return nil }
            throw SystemError("lock \(path)", code: error)
        }
        return FileLock(fd: fd)
    }

    /// Whether someone holds the exclusive lock of `path` now; a missing file is held by nobody.
    /// Asked with a shared lock that is let go at once, so asking never keeps anyone out.
    public static func isHeld(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard flock(fd, LOCK_SH | LOCK_NB) == 0 else { return true }
        flock(fd, LOCK_UN)
        return false
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
