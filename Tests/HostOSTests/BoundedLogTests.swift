import Foundation
import HostOS
import Testing

@Suite struct BoundedLogTests {
    @Test func aLogPastItsLimitKeepsItsHeadAndTailAndSaysWhatWent() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bounded-\(UUID().uuidString).log").path
        defer { unlink(path) }
        let lines = (0..<100_000).map { "line \($0) of the console\n" }.joined()
        try lines.write(toFile: path, atomically: false, encoding: .utf8)
        let size = lines.utf8.count
        // A writer that holds the file open with O_APPEND (as QEMU holds the console) goes on
        // at the new end after the trim.
        let writer = open(path, O_WRONLY | O_APPEND)
        defer { close(writer) }
        #expect(BoundedLog.trim(path, limit: size + 1, head: 1000, tail: 2000) == nil)  // under the limit: untouched
        let dropped = try #require(BoundedLog.trim(path, limit: 1 << 20, head: 1000, tail: 2000))
        #expect(dropped == size - 3000)
        let kept = try String(contentsOfFile: path, encoding: .utf8)
        #expect(kept.hasPrefix("line 0 of the console\n"))
        #expect(kept.hasSuffix("line 99999 of the console\n"))
        #expect(kept.contains("[... \(dropped) bytes of this log trimmed by machine"))
        #expect(kept.utf8.count < 4000)
        _ = "after the trim\n".withCString { write(writer, $0, strlen($0)) }
        #expect(try String(contentsOfFile: path, encoding: .utf8).hasSuffix("line 99999 of the console\nafter the trim\n"))
    }
}
