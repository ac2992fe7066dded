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
    /// Watch descriptor -> the folder it watches.
    private var folders: [Int32: String] = [:]
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
        var pending = [root]
        while let folder = pending.popLast() {
            guard !skip(folder) else { continue }
            let wd = inotify_add_watch(fd, folder, Self.watchMask)
            if wd < 0 {
                if errno == ENOSPC {
                    if exhaustedAt == nil { exhaustedAt = folder }
                } else {
                    unwatchable += 1
                }
                continue
            }
            folders[wd] = folder
            pending.append(contentsOf: subfolders(of: folder))
        }
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
        var movedFolders: [UInt32: String] = [:]
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
            guard let folder = folders[wd], !name.isEmpty else { continue }
            let path = folder == "/" ? "/" + name : folder + "/" + name
            let event = Event(mask: mask, cookie: cookie, path: path)
            if event.isDirectory {
                if mask & UInt32(IN_CREATE) != 0 {
                    watch(tree: path)
                } else if mask & UInt32(IN_MOVED_FROM) != 0 {
                    movedFolders[cookie] = path
                } else if mask & UInt32(IN_MOVED_TO) != 0 {
                    if let from = movedFolders.removeValue(forKey: cookie) {
                        renameFolders(from: from, to: path)
                    } else {
                        watch(tree: path)  // moved in from outside the tree
                    }
                }
            }
            events.append(event)
        }
        // Folders moved out of the tree: their watches would report under names that are gone.
        for (_, gone) in movedFolders { unwatchFolders(under: gone) }
        return events
    }

    private func renameFolders(from old: String, to new: String) {
        for (wd, folder) in folders where folder == old || folder.hasPrefix(old + "/") {
            folders[wd] = new + folder.dropFirst(old.count)
        }
    }

    private func unwatchFolders(under gone: String) {
        for (wd, folder) in folders where folder == gone || folder.hasPrefix(gone + "/") {
            inotify_rm_watch(fd, wd)
            folders[wd] = nil
        }
    }

    static let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!

    /// The folders directly in `folder`, never through a symlink.
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
            let path = folder == "/" ? "/" + name : folder + "/" + name
            switch Int32(entry.pointee.d_type) {
            case Int32(DT_DIR): found.append(path)
            case Int32(DT_UNKNOWN):
                if HostPath.isFolder(path, followingLinks: false) { found.append(path) }
            default: break
            }
        }
        return found
    }
}
