#if canImport(Glibc)
import Glibc
#endif

/// What a file takes on its file system: its length, and the bytes it holds there (a sparse
/// file, such as a qcow2 disk whose guest trims, holds less than its length; `du` shows this).
public struct FileSpace: Sendable, Equatable, Codable {
    public let apparentBytes: Int64
    public let allocatedBytes: Int64

    public init(apparentBytes: Int64, allocatedBytes: Int64) {
        self.apparentBytes = apparentBytes
        self.allocatedBytes = allocatedBytes
    }

    /// The file's space, or nil if it cannot be read (missing, no permission).
    public static func of(_ path: String) -> FileSpace? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        // st_blocks counts 512-byte units whatever the file system's block size.
        return FileSpace(apparentBytes: Int64(info.st_size), allocatedBytes: Int64(info.st_blocks) * 512)
    }
}
