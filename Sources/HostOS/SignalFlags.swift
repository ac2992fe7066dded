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
        ignoreBrokenPipes()
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal(sig) { _ in SignalFlags.terminationRequested = 1 }
        }
    }

    /// A write to a pipe or socket whose reader is gone fails with EPIPE, which the caller
    /// reports, instead of killing the process without a word: an ordinary user's `machine up`
    /// in the suite once died of SIGPIPE after "starting default", and the shell's "Broken
    /// pipe" was all it said (which write it was is not known: our sockets use MSG_NOSIGNAL,
    /// the C libraries' may not).
    /// A handler that does nothing rather than SIG_IGN: an ignored signal stays ignored across
    /// exec, and Foundation's Process passes it on, so the image recipes' `cmd | head` would
    /// see EPIPE errors where a shell expects the writer to die; a handled one is reset there.
    public static func ignoreBrokenPipes() {
        signal(SIGPIPE) { _ in }
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
