import CLibSSH2

/// A failure of an SSH operation: libssh2's error code and text, or one of our own checks.
public struct SSHError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        case library      // libssh2 reported it (code is LIBSSH2_ERROR_*)
        case system       // a socket call failed (code is errno)
        case hostKeyMismatch
        case remoteCommand
    }
    public let kind: Kind
    public let code: Int32
    public let message: String
    public let operation: String

    public var description: String { "\(operation): \(message)" }

    static func last(_ session: OpaquePointer, _ code: Int32, _ operation: String) -> SSHError {
        var text: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        libssh2_session_last_error(session, &text, &length, 0)
        let message = text.map { String(cString: $0) } ?? "libssh2 error \(code)"
        return SSHError(kind: .library, code: code, message: message, operation: operation)
    }
}
