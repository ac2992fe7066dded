import Foundation
import HostOS
import Testing

@Suite struct HostPathWalkerTests {
    /// root/share (shared) holding links a guest could plant, root/outside (not shared) with
    /// a secret, and root/mine, the user's own link to the share.
    final class Tree {
        let root: String
        var share: String { root + "/share" }
        var outside: String { root + "/outside" }
        init() throws {
            let fm = FileManager.default
            let base = fm.temporaryDirectory.appendingPathComponent("walker-\(UUID().uuidString.prefix(8))").path
            try fm.createDirectory(atPath: base + "/share/sub", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: base + "/outside", withIntermediateDirectories: true)
            root = realpath(base, nil).map { p in defer { free(p) }; return String(cString: p) }!
            fm.createFile(atPath: root + "/outside/secret", contents: Data("secret".utf8))
            fm.createFile(atPath: root + "/share/sub/file", contents: Data("ok".utf8))
            try fm.createSymbolicLink(atPath: root + "/share/evil", withDestinationPath: root + "/outside/secret")
            try fm.createSymbolicLink(atPath: root + "/share/evildir", withDestinationPath: root + "/outside")
            try fm.createSymbolicLink(atPath: root + "/mine", withDestinationPath: "share/sub")
            try fm.createSymbolicLink(atPath: root + "/outside/link", withDestinationPath: "secret")
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }
        var walker: HostPathWalker { HostPathWalker(shares: [share]) }
    }

    @Test func aSymlinkInsideAShareIsReportedNotFollowed() throws {
        let t = try Tree()
        let entry = try t.walker.locate(t.share + "/evil")
        #expect(entry.kind == .sharedSymlink)
        #expect(entry.path == t.share + "/evil")
    }

    @Test func aPathThroughASymlinkInsideAShareIsRefused() throws {
        let t = try Tree()
        #expect(throws: SystemError.self) { try t.walker.locate(t.share + "/evildir/secret") }
        #expect(throws: SystemError.self) { try t.walker.locate(t.share + "/evildir/newfile") }
    }

    @Test func theUsersOwnSymlinksOutsideSharesAreFollowed() throws {
        let t = try Tree()
        let viaMine = try t.walker.locate(t.root + "/mine/file")
        #expect(viaMine.kind == .regularFile)
        #expect(viaMine.path == t.share + "/sub/file")
        let relative = try t.walker.locate("link", currentDirectory: t.outside)
        #expect(relative.kind == .regularFile)
        #expect(relative.path == t.outside + "/secret")
        #expect(try t.walker.locate(t.root + "/mine").kind == .directory)
    }

    @Test func missingFilesDotsAndTheRootResolve() throws {
        let t = try Tree()
        let missing = try t.walker.locate(t.share + "/sub/../sub/new")
        #expect(missing.kind == .missing)
        #expect(missing.path == t.share + "/sub/new")
        #expect(try t.walker.locate("/").kind == .directory)
        #expect(throws: SystemError.self) { try t.walker.locate(t.share + "/nothing/new") }
        #expect(throws: SystemError.self) { try t.walker.locate(t.share + "/sub/file/x") }
        // Without shares nothing is special: the same link is followed.
        #expect(try HostPathWalker(shares: []).locate(t.share + "/evil").kind == .regularFile)
    }
}
