import Foundation
import HostOS
import Testing

/// What HostOS gives in place of Foundation's parts beyond FoundationEssentials.
@Suite struct PlainFoundationTests {
    @Test func cFormatFormatsNumbersAsPrintfDoes() {
        #expect(String(cFormat: "%.1f MB", 1234.56) == "1234.6 MB")
        #expect(String(cFormat: "0x%02x", 7) == "0x07")
        #expect(String(cFormat: "%08x", UInt32(0xbeef)) == "0000beef")
        #expect(String(cFormat: "%ld%% of %.0f s", 42, 2.5) == "42% of 2 s")
        // Longer than the first buffer.
        #expect(String(cFormat: "%0600ld", 1).count == 600)
    }

    @Test func trimmingRemovesOnlyTheEnds() {
        #expect(" \t a b \n\r\n".trimmed() == "a b")
        #expect("".trimmed() == "" && "  ".trimmed() == "")
        #expect("//a/b//".trimming("/") == "a/b")
        #expect("x y"[...].trimmed() == "x y")
    }

    @Test func aDetachedThreadRunsAndAConditionWakesItsWaiter() {
        let condition = Condition()
        nonisolated(unsafe) var done = false
        condition.lock()
        Threads.detach {
            Threads.sleep(0.05)
            condition.lock()
            done = true
            condition.signal()
            condition.unlock()
        }
        while !done {
            #expect(condition.wait(seconds: 10), "the thread never signalled")
        }
        condition.unlock()
        #expect(done)
    }

    @Test func aConditionWaitEndsWhenItsTimeRunsOut() {
        let condition = Condition()
        let started = Date()
        condition.lock()
        let signalled = condition.wait(seconds: 0.2)
        condition.unlock()
        #expect(!signalled)
        #expect(Date().timeIntervalSince(started) >= 0.19)
    }

    @Test func aLockKeepsCountsOfManyThreadsWhole() {
        let lock = Lock()
        let finished = Condition()
        nonisolated(unsafe) var count = 0
        nonisolated(unsafe) var threads = 0
        for _ in 0..<8 {
            Threads.detach {
                for _ in 0..<10_000 { lock.withLock { count += 1 } }
                finished.lock()
                threads += 1
                finished.signal()
                finished.unlock()
            }
        }
        finished.lock()
        while threads < 8 { if !finished.wait(seconds: 30) { break } }
        finished.unlock()
        #expect(lock.withLock { count } == 80_000)
    }

    @Test func fileErrorsExplainThemselvesInPlainWords() {
        do {
            _ = try Data(contentsOf: URL(fileURLWithPath: "/no/such/file"))
            Issue.record("no error")
        } catch {
            #expect(error.explanation == "No such file or directory")
        }
    }
}
