import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// posix_spawn with what machine's children need: stdin from /dev/null, stdout and stderr into
/// one file, no descriptor of ours inherited, signals back at their defaults, and on request a
/// session of the child's own. (Foundation's Process.waitUntilExit was seen never returning
/// here while another child was alive.)
public enum Spawn {
    public struct Options: Sendable {
        /// Where stdout and stderr go (created 0600 if missing).
        public var output: String
        /// Append to `output` rather than truncate it.
        public var append = false
        /// A session of its own: a terminal closing or the caller's process group being
        /// killed leaves it running.
        public var newSession = false
        /// Look argv[0] up in PATH.
        public var searchPath = true
        /// The child's stdin (default /dev/null); the caller keeps and closes its own copy.
        public var input: Int32?
        /// Descriptors the child inherits at the same numbers (the caller clears their
        /// close-on-exec flag; all others are closed in the child).
        public var keep: [Int32] = []
        /// The child's stdout, when not `output` (which then takes only stderr); the caller
        /// keeps and closes its own copy.
        public var stdout: Int32?
        /// The child's stderr, when not `output` (used only with `stdout`).
        public var stderr: Int32?
        /// The child's environment (default: this process's).
        public var environment: [String: String]?

        public init(output: String, append: Bool = false, newSession: Bool = false, searchPath: Bool = true) {
            self.output = output
            self.append = append
            self.newSession = newSession
            self.searchPath = searchPath
        }
    }

    /// Starts argv; its pid (the caller waits for it).
    public static func start(_ argv: [String], _ options: Options) throws(SystemError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let input = options.input {
            posix_spawn_file_actions_adddup2(&actions, input, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        let mode = O_WRONLY | O_CREAT | (options.append ? O_APPEND : O_TRUNC)
        if let stdout = options.stdout {
            posix_spawn_file_actions_adddup2(&actions, stdout, 1)
            if let stderr = options.stderr {
                posix_spawn_file_actions_adddup2(&actions, stderr, 2)
            } else {
                posix_spawn_file_actions_addopen(&actions, 2, options.output, mode, 0o600)
            }
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, options.output, mode, 0o600)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        // Nothing else from this process: an inherited descriptor (an SSH session, a pipe of
        // the caller's shell) would stay open for the child's whole life.
        // (Swift's Glibc does not import posix_spawn_file_actions_addclosefrom_np.)
        let inherited = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in inherited where fd > 2 && !options.keep.contains(fd) { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // (POSIX_SPAWN_SETSID is glibc's 0x80; Swift's Glibc module does not import it.)
        let setsid: Int32 = options.newSession ? 0x80 : 0
        posix_spawnattr_setflags(&attributes, Int16(setsid | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGWINCH, SIGUSR1] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        // (Empty when the child takes this process's environment; a given one ends in nil.)
        let cEnvironment = options.environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] } ?? []
        defer { cEnvironment.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = cEnvironment.withUnsafeBufferPointer { given in
            let environment = given.isEmpty ? UnsafePointer(environ) : given.baseAddress
            return options.searchPath
                ? posix_spawnp(&pid, argv[0], &actions, &attributes, &cArgs, environment)
                : posix_spawn(&pid, argv[0], &actions, &attributes, &cArgs, environment)
        }
        guard rc == 0 else { throw SystemError("run \(argv[0])", code: rc) }
        return pid
    }
}
