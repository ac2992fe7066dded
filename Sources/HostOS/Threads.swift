#if canImport(Glibc)
import Glibc
#endif

/// Threads of machine's own, on pthreads: Foundation's Thread would bring all of Foundation
/// (and ICU, tens of MB) into the binary for what is one pthread_create.
public enum Threads {
    /// Runs `body` on a new detached thread.
    public static func detach(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
            body.run()
            return nil
        }, box)
        // Without a thread the work could not be done at all: as Foundation's Thread did,
        // machine stops rather than go on with a part missing.
        guard rc == 0 else { fatalError("cannot start a thread: \(String(cString: strerror(rc)))") }
        pthread_detach(thread)
    }

    /// Sleeps for `seconds` (resumed after signals until the whole time has passed).
    public static func sleep(_ seconds: Double) {
        guard seconds > 0 else { return }
        var wanted = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
        var left = timespec()
        while nanosleep(&wanted, &left) < 0 && errno == EINTR { wanted = left }
    }

    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
}
