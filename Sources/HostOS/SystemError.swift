import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call or child process: what was being done, and errno (0 when the failure
/// has no errno, such as a program that exited non-zero; `detail` then says what happened).
/// No advice for users here: the layers above know what a user can do about it.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    public let operation: String
    public let code: Int32
    public let detail: String?

    public init(_ operation: String, code: Int32, detail: String? = nil) {
        self.operation = operation
        self.code = code
        self.detail = detail
    }

    /// The error of the call that just failed (errno read now, so call this first).
    public static func last(_ operation: String) -> SystemError {
        SystemError(operation, code: errno)
    }

    /// Whether it failed because something was already at the path (EEXIST).
    public var isAlreadyThere: Bool { code == EEXIST }

    /// "cannot OPERATION: REASON" for a failed call; "OPERATION failed: DETAIL" for a program
    /// that exited non-zero (operation then reads like "making the seed image").
    public var description: String {
        code == 0 ? "\(operation) failed: \(detail ?? "")" : "cannot \(operation): " + (detail ?? String(cString: strerror(code)))
    }
}

extension Error {
    /// The reason in a user's words: the C library's text for a file error of FoundationEssentials
    /// (whose own description is a dump of its fields; Foundation's localizedDescription is not
    /// in FoundationEssentials), the description of anything else.
    public var explanation: String {
        if let posix = self as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        if let cocoa = self as? CocoaError {
            if let posix = cocoa.underlying as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
            return "error \(cocoa.code.rawValue)" + (cocoa.filePath.map { " with \($0)" } ?? "")
        }
        return "\(self)"
    }
}
