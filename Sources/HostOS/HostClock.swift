#if canImport(Glibc)
import Glibc
#endif

/// The host's clocks, for telling a host that slept from a guest that kept quiet.
public enum HostClock {
    /// Seconds this host has spent suspended since it booted: CLOCK_BOOTTIME counts them,
    /// CLOCK_MONOTONIC does not. A jump between two readings is a sleep in between.
    public static func suspendedSeconds() -> Double {
        seconds(CLOCK_BOOTTIME) - seconds(CLOCK_MONOTONIC)
    }

    private static func seconds(_ clock: clockid_t) -> Double {
        var now = timespec()
        clock_gettime(clock, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
