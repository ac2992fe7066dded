import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// inotify's event bits, named for the modules that do not import the C library.
public enum InotifyMask {
    public static let create = UInt32(IN_CREATE)
    public static let delete = UInt32(IN_DELETE)
    public static let modify = UInt32(IN_MODIFY)
    public static let closeWrite = UInt32(IN_CLOSE_WRITE)
    public static let attrib = UInt32(IN_ATTRIB)
    public static let movedFrom = UInt32(IN_MOVED_FROM)
    public static let movedTo = UInt32(IN_MOVED_TO)
    public static let isDirectory = UInt32(IN_ISDIR)
}

/// inotify over whole folder trees: a watch on every folder (inotify watches one folder, not
/// what is below it), added as folders appear, moved with them, dropped as they go. Symlinks
/// are never followed, so a tree never reaches outside itself.
public final class InotifyTree {
    /// One change, as inotify reported it, with the full path of the entry it names.
    public struct Event: Equatable, Sendable {
        public let mask: UInt32
        public let cookie: UInt32
        public let path: String

        public var isDirectory: Bool { mask & UInt32(IN_ISDIR) != 0 }
    }

    /// What a folder's watch listens for: every change to the entries in it.
    static let watchMask = UInt32(IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO)
        | UInt32(IN_ONLYDIR) | UInt32(IN_DONT_FOLLOW) | UInt32(IN_EXCL_UNLINK)

    public let fd: Int32
    /// A watched folder: the watch of the folder it is in, and its own name (a tree's root has
    /// no parent, and its whole path for a name). Names, not paths: most fit in a String's 15
    /// inline bytes where a path each was a heap allocation (a watch cost about 150 bytes; a
    /// home of 15,000 folders, 2.2 MiB), and a folder moved in the tree renames nothing below it.
    private struct Folder {
        var parent: Int32
        var name: String
    }
    private static let noParent: Int32 = -1
    /// Watch descriptor -> the folder it watches.
    private var folders: [Int32: Folder] = [:]
    /// Folders never watched, nor anything below them.
    private let skip: (String) -> Bool
    /// The first folder left unwatched because the user's inotify watches ran out, if any.
    public private(set) var exhaustedAt: String?
    /// Other folders that could not be watched (gone, unreadable), counted.
    public private(set) var unwatchable = 0

    public init(skip: @escaping (String) -> Bool = { _ in false }) throws(SystemError) {
        fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else { throw SystemError.last("start inotify") }
        self.skip = skip
    }

    deinit { close(fd) }

    public var watchCount: Int { folders.count }

    /// Watches `root` and every folder below it.
    public func watch(tree root: String) {
        watch(root, parent: Self.noParent, name: root)
    }

    /// Watches `path`, which is `name` in the folder of watch `parent`, and every folder below.
    private func watch(_ path: String, parent: Int32, name: String) {
        var pending = [(path: path, parent: parent, name: name)]
        // A folder reached again in one walk (a bind mount of a folder above it) is not walked
        // again: the walk would never end.
        var walked: Set<Int32> = []
        while let next = pending.popLast() {
            guard !skip(next.path) else { continue }
            let wd = inotify_add_watch(fd, next.path, Self.watchMask)
            if wd < 0 {
                if errno == ENOSPC {
                    if exhaustedAt == nil { exhaustedAt = next.path }
                } else {
                    unwatchable += 1
                }
                continue
            }
            guard walked.insert(wd).inserted else { continue }
            folders[wd] = Folder(parent: next.parent, name: next.name)
            for name in subfolders(of: next.path) {
                pending.append((Self.child(name, of: next.path), wd, name))
            }
        }
    }

    private static func child(_ name: String, of folder: String) -> String {
        folder == "/" ? "/" + name : folder + "/" + name
    }

    /// The path of the folder watch `wd` watches; nil for a watch no longer known (or one whose
    /// folder above is not).
    private func path(of wd: Int32) -> String? {
        var names: [String] = []
        var current = wd
        while let folder = folders[current], names.count <= folders.count {
            names.append(folder.name)
            guard folder.parent != Self.noParent else {
                return names.dropLast().reversed().reduce(folder.name) { Self.child($1, of: $0) }
            }
            current = folder.parent
        }
        return nil
    }

    /// The watch of the folder `name` in the folder of watch `parent`, if it is watched.
    private func watch(named name: String, in parent: Int32) -> Int32? {
        folders.first { $0.value.parent == parent && $0.value.name == name }?.key
    }

    /// Waits up to `timeout` seconds for changes; what happened, in order. New folders are
    /// watched before this returns, so their own changes are not missed after that.
    public func read(timeout: Double) -> [Event] {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return [] }
        return buffer.withUnsafeBytes { bytes in parse(UnsafeRawBufferPointer(rebasing: bytes[0..<count])) }
    }

    /// Whether inotify dropped events because its queue was full (IN_Q_OVERFLOW) since last asked.
    public private(set) var overflowed = false
    public func takeOverflow() -> Bool {
        defer { overflowed = false }
        return overflowed
    }

    private func parse(_ bytes: UnsafeRawBufferPointer) -> [Event] {
        var events: [Event] = []
        /// Watched folders moved from where they were, by the move's cookie.
        var movedFolders: [UInt32: Int32] = [:]
        var offset = 0
        let header = MemoryLayout<inotify_event>.size
        while offset + header <= bytes.count {
            let wd = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let cookie = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            let nameBytes = UnsafeRawBufferPointer(rebasing: bytes[(offset + header)..<min(offset + header + length, bytes.count)])
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            offset += header + length
            if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                overflowed = true
                continue
            }
            if mask & UInt32(IN_IGNORED) != 0 {
                folders[wd] = nil
                continue
            }
            guard !name.isEmpty, let folder = path(of: wd) else { continue }
            let path = Self.child(name, of: folder)
            let event = Event(mask: mask, cookie: cookie, path: path)
            if event.isDirectory {
                if mask & UInt32(IN_CREATE) != 0 {
                    watch(path, parent: wd, name: name)
                } else if mask & UInt32(IN_MOVED_FROM) != 0 {
                    if let moved = watch(named: name, in: wd) { movedFolders[cookie] = moved }
                } else if mask & UInt32(IN_MOVED_TO) != 0 {
                    if let moved = movedFolders.removeValue(forKey: cookie) {
                        folders[moved] = Folder(parent: wd, name: name)
                    } else {
                        watch(path, parent: wd, name: name)  // moved in from outside the tree
                    }
                }
            }
            events.append(event)
        }
        // Folders moved out of the tree: their watches would report under names that are gone.
        for (_, gone) in movedFolders { unwatchFolders(under: gone) }
        return events
    }

    /// Drops the watch `top` and those of the folders below it.
    private func unwatchFolders(under top: Int32) {
        var below: [Int32: Bool] = [top: true]
        func isBelow(_ wd: Int32) -> Bool {
            if let known = below[wd] { return known }
            guard let parent = folders[wd]?.parent, parent != Self.noParent else { return false }
            below[wd] = false  // a cycle, were there one, ends here
            let answer = isBelow(parent)
            below[wd] = answer
            return answer
        }
        for wd in folders.keys where isBelow(wd) {
            inotify_rm_watch(fd, wd)
            folders[wd] = nil
        }
    }

    static let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!

    /// The names of the folders directly in `folder`, never through a symlink.
    private func subfolders(of folder: String) -> [String] {
        guard let directory = opendir(folder) else { return [] }
        defer { closedir(directory) }
        var found: [String] = []
        while let entry = readdir(directory) {
            // Read the name where it lies, up to its NUL. (`entry.pointee.d_name` would copy all
            // 256 bytes of the field, but a record is only as long as its name: past the last
            // record of readdir's buffer that read ran off the heap and killed the agent.)
            let name = String(cString: UnsafeRawPointer(entry).advanced(by: Self.nameOffset).assumingMemoryBound(to: CChar.self))
            guard name != "." && name != ".." else { continue }
            switch Int32(entry.pointee.d_type) {
            case Int32(DT_DIR): found.append(name)
            case Int32(DT_UNKNOWN):
                if HostPath.isFolder(Self.child(name, of: folder), followingLinks: false) { found.append(name) }
            default: break
            }
        }
        return found
    }
}
