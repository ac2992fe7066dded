import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Linux's O_PATH (Glibc only exports it under _GNU_SOURCE): a descriptor that names a folder
/// for the *at() calls without opening its content.
private let O_PATH: Int32 = 0o10000000

/// Finds host paths for code that reads or writes the host's files on a machine's behalf
/// (`machine cp`) without ever following a symlink that lies inside a shared folder: the
/// guest can plant one there (say, to /etc/passwd). Symlinks elsewhere were made by the
/// user or the system and are followed as usual.
///
/// The path is walked one component at a time with `openat(O_PATH | O_NOFOLLOW)` from
/// folders already opened, so a folder swapped for a symlink between two steps makes the walk
/// fail instead of leading it elsewhere.
public struct HostPathWalker {
    /// Canonical host paths of the shared folders.
    public let shares: [String]

    public init(shares: [String]) {
        self.shares = shares
    }

    public enum Kind: Equatable, Sendable {
        case missing, directory, regularFile, other
        /// A symlink inside a shared folder, left alone.
        case sharedSymlink
    }

    /// What the last component of a path is, and the open folder that holds it.
    public final class Entry {
        /// O_PATH descriptor of the folder holding `name`, for the *at() calls.
        public let folder: Int32
        /// The folder's real path.
        public let folderPath: String
        public let name: String
        public let kind: Kind

        init(folder: Int32, folderPath: String, name: String, kind: Kind) {
            self.folder = folder
            self.folderPath = folderPath
            self.name = name
            self.kind = kind
        }

        deinit { close(folder) }

        public var path: String { folderPath == "/" ? "/" + name : folderPath + "/" + name }
    }

    public func isInsideShare(_ path: String) -> Bool {
        shares.contains { path == $0 || path.hasPrefix($0 == "/" ? "/" : $0 + "/") }
    }

    /// Walks `path` (absolute, or relative to the current folder).
    public func locate(_ path: String, currentDirectory: String = FileManager.default.currentDirectoryPath) throws(SystemError) -> Entry {
        let absolute = path.hasPrefix("/") ? path : currentDirectory + "/" + path
        var pending = Array(Self.components(absolute).reversed())
        var folder = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)
        var folderPath = "/"
        var links = 0
        /// The error of the call that just failed (errno read first), or one with `code`.
        func fail(_ operation: String, code: Int32? = nil, detail: String? = nil) -> SystemError {
            let error = SystemError(operation, code: code ?? errno, detail: detail)
            close(folder)
            return error
        }
        guard folder >= 0 else { throw SystemError.last("open /") }
        if pending.isEmpty { return Entry(folder: folder, folderPath: "/", name: ".", kind: .directory) }
        while let name = pending.popLast() {
            let isLast = pending.isEmpty
            if name == ".." {
                let parent = openat(folder, "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard parent >= 0 else { throw fail("open the folder above \(folderPath)") }
                close(folder)
                folder = parent
                if folderPath != "/" { folderPath = String(folderPath[..<folderPath.lastIndex(of: "/")!]) }
                if folderPath.isEmpty { folderPath = "/" }
                if isLast { return Entry(folder: folder, folderPath: folderPath, name: ".", kind: .directory) }
                continue
            }
            var info = stat()
            guard fstatat(folder, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
                let reason = errno
                if reason == ENOENT && isLast { return Entry(folder: folder, folderPath: folderPath, name: name, kind: .missing) }
                throw fail("reach \(Self.join(folderPath, name))", code: reason)
            }
            let here = Self.join(folderPath, name)
            switch info.st_mode & S_IFMT {
            case S_IFLNK:
                if isInsideShare(here) {
                    if isLast { return Entry(folder: folder, folderPath: folderPath, name: name, kind: .sharedSymlink) }
                    throw fail("follow the symlink \(here)", code: ELOOP,
                               detail: "it is inside a folder shared with a machine, which may have put it there")
                }
                links += 1
                guard links <= 40 else { throw fail("resolve \(path)", code: ELOOP) }
                var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let length = readlinkat(folder, name, &buffer, buffer.count - 1)
                guard length >= 0 else { throw fail("read the symlink \(here)") }
                let target = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if target.hasPrefix("/") {
                    let root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)
                    close(folder)
                    folder = root
                    folderPath = "/"
                }
                pending.append(contentsOf: Self.components(target).reversed())
                if pending.isEmpty { return Entry(folder: folder, folderPath: folderPath, name: ".", kind: .directory) }
            case S_IFDIR:
                if isLast { return Entry(folder: folder, folderPath: folderPath, name: name, kind: .directory) }
                let next = openat(folder, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard next >= 0 else { throw fail("open \(here)") }
                close(folder)
                folder = next
                folderPath = here
            case S_IFREG:
                guard isLast else { throw fail("reach \(Self.join(here, pending.last!))", code: ENOTDIR) }
                return Entry(folder: folder, folderPath: folderPath, name: name, kind: .regularFile)
            default:
                guard isLast else { throw fail("reach \(Self.join(here, pending.last!))", code: ENOTDIR) }
                return Entry(folder: folder, folderPath: folderPath, name: name, kind: .other)
            }
        }
        // Only reached when a symlink's target ended the path in a `.`.
        return Entry(folder: folder, folderPath: folderPath, name: ".", kind: .directory)
    }

    public static func components(_ path: String) -> [String] {
        path.split(separator: "/").map(String.init).filter { $0 != "." }
    }

    public static func join(_ folder: String, _ name: String) -> String {
        folder == "/" ? "/" + name : folder + "/" + name
    }
}
