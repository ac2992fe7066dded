#if canImport(Glibc)
import Glibc
#endif

/// A mutex (NSLock's part that machine uses, on a pthread mutex, without Foundation).
public final class Lock: @unchecked Sendable {
    fileprivate let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }

    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A mutex with a condition variable (NSCondition's part that machine uses). Waits are timed
/// on CLOCK_MONOTONIC, so a change of the wall clock (a guest clock fixed, the host resumed
/// from sleep) neither cuts a wait short nor stretches it.
public final class Condition: @unchecked Sendable {
    private let mutex = Lock()
    private let variable = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(variable, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(variable)
        variable.deallocate()
    }

    public func lock() { mutex.lock() }
    public func unlock() { mutex.unlock() }

    /// Waits (the lock held) until signalled.
    public func wait() { pthread_cond_wait(variable, mutex.mutex) }

    /// Waits (the lock held) until signalled or `seconds` have passed; false when the time ran out.
    @discardableResult
    public func wait(seconds: Double) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nanoseconds = Int(max(0, seconds) * 1e9) + now.tv_nsec
        var deadline = timespec(tv_sec: now.tv_sec + nanoseconds / 1_000_000_000, tv_nsec: nanoseconds % 1_000_000_000)
        return pthread_cond_timedwait(variable, mutex.mutex, &deadline) != ETIMEDOUT
    }

    public func signal() { pthread_cond_signal(variable) }
    public func broadcast() { pthread_cond_broadcast(variable) }
}
