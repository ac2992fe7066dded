import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// A connected stream socket whose far end is a command's stdin and stdout, as OpenSSH's
/// ProxyCommand: `ssh -W HOST:PORT JUMPHOST` makes it a connection to HOST:PORT as seen from
/// JUMPHOST, reached with the user's own OpenSSH (keys, agent, config, known_hosts), which is
/// how libvirt's qemu+ssh:// reaches its daemon too.
public enum CommandSocket {
    /// Starts argv with its stdin and stdout on a new socket pair; our end, for the caller to
    /// own and close. The command's stderr goes to `errors`. It ends when our end closes (it
    /// reads EOF), and is reaped then by a thread of its own.
    public static func start(_ argv: [String], errors: String) throws(SystemError) -> Int32 {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw SystemError.last("make a socket pair for \(argv[0])")
        }
        let (ours, theirs) = (pair[0], pair[1])
        var options = Spawn.Options(output: errors)
        options.input = theirs
        options.stdout = theirs
        let pid: pid_t
        do {
            pid = try Spawn.start(argv, options)
        } catch {
            close(ours)
            close(theirs)
            throw error
        }
        close(theirs)
        Threads.detach {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        return ours
    }
}
