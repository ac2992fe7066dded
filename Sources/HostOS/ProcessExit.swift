#if canImport(Glibc)
import Glibc
#endif

/// Whether another process (one this process did not start: QEMU, started by libvirtd) has
/// ended, through a pidfd: unlike a pid, which the kernel may give to a new process, a pidfd
/// names the one process it was opened for.
public final class ProcessExit: @unchecked Sendable {
    public let pid: pid_t
    private let fd: Int32
    /// glibc's pidfd_open (2.36 and later), looked up: Swift's Glibc module does not import
    /// <sys/pidfd.h>, and cannot call the variadic syscall(2).
    private static let pidfdOpen: (@convention(c) (pid_t, UInt32) -> Int32)? = {
        dlsym(nil, "pidfd_open").map { unsafeBitCast($0, to: (@convention(c) (pid_t, UInt32) -> Int32).self) }
    }()

    /// nil when no process `pid` runs (or pidfds are missing: Linux before 5.3, glibc before 2.36).
    public init?(pid: pid_t) {
        guard let open = Self.pidfdOpen else { return nil }
        let opened = open(pid, 0)
        guard opened >= 0 else { return nil }
        self.pid = pid
        fd = opened
    }

    deinit { close(fd) }

    /// A pidfd turns readable when its process ends (and is close-on-exec from the start).
    public var hasEnded: Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) == 1 && entry.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0
    }
}
