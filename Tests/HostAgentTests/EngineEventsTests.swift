@testable import HostAgent
import Testing

@Suite struct EngineEventsTests {
    func feed(_ stream: inout EngineEvents, _ text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { stream.feed($0) }
    }

    let start = #"{"Type":"container","Action":"start","Actor":{"ID":"3f1e"}}"#
    let exec = #"{"Type":"container","Action":"exec_start: sh","Actor":{"ID":"3f1e"}}"#

    @Test func aRelevantEventAsksForAListOnceItsLineIsWhole() {
        var stream = EngineEvents()
        let half = start.index(start.startIndex, offsetBy: 20)
        #expect(!feed(&stream, String(start[..<half])))
        #expect(feed(&stream, String(start[half...]) + "\n"))
        #expect(!feed(&stream, exec + "\n"))
    }

    @Test func aBurstOfEventsInOneReadAsksOnce() {
        var stream = EngineEvents()
        #expect(feed(&stream, String(repeating: start + "\n", count: 50)))
        #expect(stream.unreadable == 0 && stream.overlong == 0)
    }

    /// A line that never ends holds at most the limit, and is counted when its end comes; the
    /// lines after it are read again.
    @Test func aLineOverTheLimitIsSkippedToItsEnd() {
        var stream = EngineEvents(lineLimit: 1000)
        #expect(feed(&stream, String(repeating: "x", count: 999)) == false)
        #expect(feed(&stream, "yy"))
        for _ in 0..<100 { _ = feed(&stream, String(repeating: "z", count: 4096)) }
        #expect(stream.pendingCount == 0 && stream.overlong == 1)
        #expect(!feed(&stream, "\n" + exec + "\nnot json\n"))
        #expect(stream.unreadable == 1)
        #expect(feed(&stream, start + "\n"))
    }
}
