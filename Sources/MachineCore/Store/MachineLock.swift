import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive per-machine lock (flock on the machine's `lock` file), held by every command
/// that changes a machine, so two commands at once cannot corrupt it. Released on deinit, and
/// by the kernel if the process dies.
public final class MachineLock {
    private let fd: Int32

    public init(files: MachineFiles, name: String) throws(MachineError) {
        let fd = open(files.lock.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw MachineError("cannot open \(files.lock.path): \(String(cString: strerror(errno)))")
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            close(fd)
            throw MachineError(
                "another machine command is working on \"\(name)\" right now",
                hint: "wait for it to finish, then run this again")
        }
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
