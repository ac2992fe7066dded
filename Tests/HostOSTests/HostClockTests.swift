import Foundation
import HostOS
import Testing

@Suite(.serialized) struct HostClockTests {
    /// The log's stamps read as ISO8601DateFormatter wrote them before, in UTC and elsewhere.
    @Test(arguments: ["UTC", "Asia/Tokyo", "America/St_Johns"])
    func timestampsAreRFC3339InTheHostsZone(zone: String) throws {
        let before = ProcessInfo.processInfo.environment["TZ"]
        setenv("TZ", zone, 1)
        tzset()
        defer {
            if let before { setenv("TZ", before, 1) } else { unsetenv("TZ") }
            tzset()
        }
        let instant = 1_796_342_400 // 2026-12-04T00:00:00Z
        let stamp = HostClock.timestamp(time_t(instant))
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: zone)
        #expect(stamp == formatter.string(from: Date(timeIntervalSince1970: TimeInterval(instant))))
        #expect(formatter.date(from: stamp)?.timeIntervalSince1970 == TimeInterval(instant))
    }
}
