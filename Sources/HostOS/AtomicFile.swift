import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// State writes that a crash cannot leave half-done: write a temp file beside the target,
/// fsync it, rename it over the target, fsync the folder.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL, mode: UInt32 = 0o644) throws(SystemError) {
        let folder = url.deletingLastPathComponent().path
        let temp = folder + "/.\(url.lastPathComponent).tmp.\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("create \(temp)") }
        var ok = data.withUnsafeBytes { bytes -> Bool in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(temp, url.path) == 0 else {
            let error = failure("write \(url.path)")
            unlink(temp)
            throw error
        }
        let dir = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
    }

    private static func failure(_ what: String) -> SystemError {
        SystemError.last(what)
    }
}
