#if canImport(Glibc)
import Glibc
#endif

/// Signals turned into flags a loop polls: a handler may only set a global, so these are the
/// globals, read and cleared by the loop.
public enum SignalFlags {
    /// Set by SIGTERM, SIGINT or SIGHUP once `catchTermination` ran.
    nonisolated(unsafe) public private(set) static var terminationRequested: sig_atomic_t = 0
    /// Set by SIGUSR1 once `catchReload` ran; `takeReload` reads and clears it.
    nonisolated(unsafe) public private(set) static var reloadRequested: sig_atomic_t = 0

    /// SIGTERM, SIGINT and SIGHUP set `terminationRequested` instead of killing the process,
    /// and a write to a closed socket returns EPIPE instead of raising SIGPIPE.
    public static func catchTermination() {
        signal(SIGPIPE, SIG_IGN)
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal(sig) { _ in SignalFlags.terminationRequested = 1 }
        }
    }

    /// Stops the loop as SIGTERM would: for a thread that found the loop has no more to do.
    public static func requestTermination() {
        terminationRequested = 1
    }

    /// SIGUSR1 sets `reloadRequested`.
    public static func catchReload() {
        signal(SIGUSR1) { _ in SignalFlags.reloadRequested = 1 }
    }

    /// Whether SIGUSR1 came since the last call.
    public static func takeReload() -> Bool {
        guard reloadRequested != 0 else { return false }
        reloadRequested = 0
        return true
    }
}
