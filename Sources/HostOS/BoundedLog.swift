import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Logs that keep a bounded size on the host: the agent's own (rotated: the log and one older
/// file) and the guest's console (written by QEMU, trimmed in place).
public enum BoundedLog {
    private static let rotation = Lock()

    /// When the file this process's stdout and stderr append to passes `limit` bytes, it
    /// becomes `path.1` (replacing an older one) and a new `path` takes its place.
    public static func rotateOutput(_ path: String, limit: Int) {
        var info = stat()
        guard fstat(STDERR_FILENO, &info) == 0, Int(info.st_size) > limit else { return }
        rotation.lock()
        defer { rotation.unlock() }
        guard fstat(STDERR_FILENO, &info) == 0, Int(info.st_size) > limit else { return }
        rename(path, path + ".1")
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        dup2(fd, STDOUT_FILENO)
        dup2(fd, STDERR_FILENO)
        close(fd)
    }

    /// Appends `data` to the existing file at `path` (a log another reader follows); false
    /// when it cannot be opened or written whole.
    public static func append(_ data: Data, to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return LocalSocket.writeAll(fd, [UInt8](data))
    }

    /// Trims a file another process appends to (QEMU's console log) once it passes `limit`
    /// bytes: it keeps its first `head` bytes (the boot) and its last `tail`, with a line that
    /// says how much went between, in place, since the writer keeps its descriptor. Returns
    /// the bytes dropped (nil: nothing to do, or it could not).
    @discardableResult
    public static func trim(_ path: String, limit: Int, head: Int, tail: Int) -> Int? {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, Int(info.st_size) > limit, head + tail < limit else { return nil }
        let size = Int(info.st_size)
        var start = [UInt8](repeating: 0, count: head)
        var end = [UInt8](repeating: 0, count: tail)
        guard pread(fd, &start, head, 0) == head, pread(fd, &end, tail, off_t(size - tail)) == tail else { return nil }
        let dropped = size - head - tail
        let marker = Array("\n[... \(dropped) bytes of this log trimmed by machine, which keeps it under \(limit >> 20) MiB ...]\n".utf8)
        let kept = start + marker + end
        guard pwrite(fd, kept, kept.count, 0) == kept.count else { return nil }
        ftruncate(fd, off_t(kept.count))
        return dropped
    }
}
