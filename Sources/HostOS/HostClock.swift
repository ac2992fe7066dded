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

    /// Now, as RFC 3339 in the host's time zone ("2026-12-03T23:59:07Z", "...T08:59:07+09:00"),
    /// for log lines. Made with strftime: ISO8601DateFormatter loads ICU's data, which was 6 of
    /// the agent's resident MiB.
    public static func timestamp(_ seconds: time_t = time(nil)) -> String {
        var now = seconds
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let stamp = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let offset = parts.tm_gmtoff / 60
        guard offset != 0 else { return stamp + "Z" }
        let sign = offset < 0 ? "-" : "+"
        let hours = abs(offset) / 60, minutes = abs(offset) % 60
        return stamp + sign + (hours < 10 ? "0" : "") + "\(hours):" + (minutes < 10 ? "0" : "") + "\(minutes)"
    }

    private static func seconds(_ clock: clockid_t) -> Double {
        var now = timespec()
        clock_gettime(clock, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
