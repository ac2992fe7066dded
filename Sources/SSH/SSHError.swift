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

    public init(kind: Kind, code: Int32, message: String, operation: String) {
        self.kind = kind
        self.code = code
        self.message = message
        self.operation = operation
    }

    public var description: String { "\(operation): \(message)" }

    /// True when only one channel failed (refused, closed) and the session is still good;
    /// false when the connection itself is broken and must be made again.
    public var affectsOnlyTheChannel: Bool {
        kind == .remoteCommand || (kind == .library && (LIBSSH2_ERROR_CHANNEL_EOF_SENT...LIBSSH2_ERROR_CHANNEL_OUTOFORDER).contains(code))
    }

    /// A blocking call waited longer than the session's timeout: nothing came (the session
    /// may still be good).
    public var isTimeout: Bool { kind == .library && code == LIBSSH2_ERROR_TIMEOUT }

    static func last(_ session: OpaquePointer, _ code: Int32, _ operation: String) -> SSHError {
        var text: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        libssh2_session_last_error(session, &text, &length, 0)
        let message = text.map { String(cString: $0) } ?? "libssh2 error \(code)"
        return SSHError(kind: .library, code: code, message: message, operation: operation)
    }
}
