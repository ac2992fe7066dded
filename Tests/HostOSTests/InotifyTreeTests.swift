import Foundation
import Glibc
import Testing
@testable import HostOS

/// InotifyTree on real folders: the events a local watcher would see, for folders that exist at
/// the start, appear later, are moved within the tree, or are skipped.
@Suite struct InotifyTreeTests {
    func folder() throws -> String {
        let path = NSTemporaryDirectory() + "inotify-tree-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path + "/a/b", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: path + "/skipped", withIntermediateDirectories: true)
        return path
    }

    /// Events until `wanted` of them came (or 2 s passed).
    func events(_ tree: InotifyTree, _ wanted: Int) -> [String] {
        var seen: [String] = []
        let deadline = Date().addingTimeInterval(2)
        while seen.count < wanted && Date() < deadline {
            seen += tree.read(timeout: 0.2).map { event in "\(kind(event.mask))\(event.isDirectory ? "dir" : "") \(event.path)" }
        }
        return seen
    }

    func kind(_ mask: UInt32) -> String {
        if mask & UInt32(IN_CREATE) != 0 { return "create" }
        if mask & UInt32(IN_DELETE) != 0 { return "delete" }
        if mask & UInt32(IN_MODIFY) != 0 { return "modify" }
        if mask & UInt32(IN_CLOSE_WRITE) != 0 { return "closewrite" }
        if mask & UInt32(IN_ATTRIB) != 0 { return "attrib" }
        if mask & UInt32(IN_MOVED_FROM) != 0 { return "movedfrom" }
        if mask & UInt32(IN_MOVED_TO) != 0 { return "movedto" }
        return "?"
    }

    /// Writes a file in place, as `echo x > f` does (Foundation's createFile saves through a
    /// temporary file and a rename).
    func write(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if !text.isEmpty { _ = text.withCString { Glibc.write(fd, $0, strlen($0)) } }
        close(fd)
    }

    @Test func seesChangesDeepInTheTreeAndInFoldersMadeLaterOrMoved() throws {
        let root = try folder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let tree = try InotifyTree(skip: { $0.hasSuffix("/skipped") })
        tree.watch(tree: root)
        #expect(tree.watchCount == 3)  // root, a, a/b
        write(root + "/a/b/f.txt", "x")
        #expect(events(tree, 3) == ["create \(root)/a/b/f.txt", "modify \(root)/a/b/f.txt", "closewrite \(root)/a/b/f.txt"])
        // A folder made now is watched from its creation on.
        try FileManager.default.createDirectory(atPath: root + "/new", withIntermediateDirectories: false)
        #expect(events(tree, 1) == ["createdir \(root)/new"])
        write(root + "/new/g", "")
        #expect(events(tree, 2) == ["create \(root)/new/g", "closewrite \(root)/new/g"])
        // A folder moved within the tree reports under its new name.
        #expect(rename(root + "/a", root + "/moved") == 0)
        #expect(events(tree, 2) == ["movedfromdir \(root)/a", "movedtodir \(root)/moved"])
        #expect(unlink(root + "/moved/b/f.txt") == 0)
        #expect(events(tree, 1) == ["delete \(root)/moved/b/f.txt"])
        // A skipped folder is never watched.
        write(root + "/skipped/h", "")
        #expect(events(tree, 1) == [])
    }

    @Test func aFolderMovedOutOfTheTreeIsNoLongerReported() throws {
        let root = try folder()
        let outside = NSTemporaryDirectory() + "inotify-outside-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: root); try? FileManager.default.removeItem(atPath: outside) }
        let tree = try InotifyTree()
        tree.watch(tree: root)
        #expect(rename(root + "/a", outside) == 0)
        #expect(events(tree, 1) == ["movedfromdir \(root)/a"])
        write(outside + "/b/x", "")
        #expect(events(tree, 1) == [])
    }

    /// Folders are kept as names under their parent's watch: a folder moved deeper, and one
    /// with a long name (past a String's inline bytes), report their full paths, and a tree
    /// removed or moved out gives its watches back.
    @Test func pathsFollowMovesAtAnyDepthAndWatchesAreGivenBack() throws {
        let root = try folder()
        let outside = NSTemporaryDirectory() + "inotify-outside-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: root); try? FileManager.default.removeItem(atPath: outside) }
        let long = "a folder whose name is longer than fifteen bytes, \u{e9}t\u{e9}"
        try FileManager.default.createDirectory(atPath: root + "/\(long)/c/d", withIntermediateDirectories: true)
        let tree = try InotifyTree()
        tree.watch(tree: root)
        #expect(tree.watchCount == 7)  // root, a, a/b, skipped, long, long/c, long/c/d
        #expect(rename(root + "/\(long)/c", root + "/a/b/c2") == 0)
        #expect(events(tree, 2) == ["movedfromdir \(root)/\(long)/c", "movedtodir \(root)/a/b/c2"])
        write(root + "/a/b/c2/d/f", "")
        #expect(events(tree, 2) == ["create \(root)/a/b/c2/d/f", "closewrite \(root)/a/b/c2/d/f"])
        write(root + "/\(long)/g", "")
        #expect(events(tree, 2) == ["create \(root)/\(long)/g", "closewrite \(root)/\(long)/g"])
        // The moved tree, moved out, is unwatched with everything below it; the rest stays.
        #expect(rename(root + "/a/b", outside) == 0)
        #expect(events(tree, 1) == ["movedfromdir \(root)/a/b"])
        #expect(tree.watchCount == 4)  // root, a, skipped, long
        try FileManager.default.removeItem(atPath: root + "/\(long)")
        _ = events(tree, 3)
        #expect(tree.watchCount == 3)
    }
}
