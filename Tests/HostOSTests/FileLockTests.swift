import Foundation
import HostOS
import Testing

/// The one flock helper: the machine lock and the agent's lock are both this.
@Suite struct FileLockTests {
    @Test func oneHolderAtATimeAndAskingKeepsNobodyOut() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lock-\(UUID().uuidString)").path
        defer { unlink(path) }
        #expect(!FileLock.isHeld(path))
        var first = try FileLock.tryExclusive(path)
        #expect(first != nil)
        #expect(FileLock.isHeld(path))
        #expect(try FileLock.tryExclusive(path) == nil)
        // Asking took a shared lock and let it go: the holder's lock is still the only one.
        #expect(FileLock.isHeld(path))
        first = nil
        #expect(!FileLock.isHeld(path))
        #expect(try FileLock.tryExclusive(path) != nil)
    }

    @Test func aLockThatCannotBeMadeSaysWhere() {
        #expect {
            try FileLock.tryExclusive("/nonexistent-\(UUID().uuidString)/lock")
        } throws: { ($0 as? SystemError)?.code == ENOENT }
    }
}
