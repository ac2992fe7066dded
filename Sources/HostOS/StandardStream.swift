import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// This process's stdout or stderr, written whole and unbuffered (FileHandle's part that
/// machine used; FileHandle is not in FoundationEssentials).
public struct StandardStream: Sendable {
    public let fd: Int32

    public static let output = StandardStream(fd: STDOUT_FILENO)
    public static let error = StandardStream(fd: STDERR_FILENO)

    public func write(_ text: String) {
        write(Data(text.utf8))
    }

    /// Writes all of `data`; a closed stream (the reader went away) drops the rest.
    public func write(_ data: Data) {
        _ = LocalSocket.writeAll(fd, [UInt8](data))
    }
}
