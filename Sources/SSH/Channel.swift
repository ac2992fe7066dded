import CLibSSH2
import FoundationEssentials
import Glibc

/// What a non-blocking read or write did.
public enum ChannelIO: Equatable, Sendable {
    /// This many bytes moved (always > 0).
    case bytes(Int)
    /// Nothing can move until the session's socket is ready again.
    case wouldBlock
    /// The remote side sent EOF on this stream (reads only).
    case eof
}

/// One channel of a session. Keeps its session alive for as long as it exists. Works in the
/// session's mode: blocking calls wait, non-blocking ones report `.wouldBlock`.
public final class Channel {
    let raw: OpaquePointer
    public let session: Session
    private(set) var closeSent = false
    private var freed = false

    /// The stream number of a command's stderr.
    public static let stderrStream: Int32 = SSH_EXTENDED_DATA_STDERR

    /// The window and packet sizes OpenSSH's client uses, so bulk copies move as fast.
    static let windowSize: UInt32 = 2 * 1024 * 1024
    static let packetSize: UInt32 = 32768

    private init(raw: OpaquePointer, session: Session) {
        self.raw = raw
        self.session = session
    }

    deinit {
        guard !freed else { return }
        // Freeing sends a close and waits for the server's; in non-blocking mode that may
        // need several rounds, so it is done in blocking mode here as the last resort.
        let wasBlocking = session.isBlocking
        if !wasBlocking { session.isBlocking = true }
        libssh2_channel_free(raw)
        if !wasBlocking { session.isBlocking = false }
    }

    /// A "session" channel, for exec, shell or subsystems. In non-blocking mode returns nil
    /// while the open is in progress: call again with the same arguments.
    public static func openSession(_ session: Session) throws(SSHError) -> Channel? {
        try open(session, type: "session", message: Data(), what: "opening a session channel")
    }

    /// A channel that carries nothing, for a non-blocking session that may have no other
    /// channel to read: opened and closed at once (in blocking mode, within the session's
    /// timeout), then kept only to be read by `takeIncoming`. libssh2 takes in what its socket
    /// received (the server's keepalive probes, which it answers then; replies to our own)
    /// only within a channel read. With none read, those bytes would sit in the socket: poll
    /// would report it readable at once, every time, and the caller's loop would spin. It
    /// costs the server nothing: sshd forgets a closed channel.
    public static func openReader(_ session: Session) throws(SSHError) -> Channel {
        let wasBlocking = session.isBlocking
        session.isBlocking = true
        defer { session.isBlocking = wasBlocking }
        let channel = try Channel(session: session)
        let rc = libssh2_channel_close(channel.raw)
        guard rc == 0 else { throw SSHError.last(session.raw, rc, "closing the session's reader channel") }
        channel.closeSent = true
        return channel
    }

    /// Lets libssh2 take in what the session's socket holds (see `openReader`); a reader
    /// channel gives no data. Throws only when the session failed.
    public func takeIncoming() throws(SSHError) {
        var byte: UInt8 = 0
        let count = withUnsafeMutableBytes(of: &byte) {
            libssh2_channel_read_ex(raw, 0, $0.baseAddress?.assumingMemoryBound(to: CChar.self), 1)
        }
        guard count < 0 && count != LIBSSH2_ERROR_EAGAIN else { return }
        let error = SSHError.last(session.raw, Int32(count), "reading from the session")
        if !error.affectsOnlyTheChannel { throw error }
    }

    /// A channel to a unix socket on the server (OpenSSH's direct-streamlocal@openssh.com;
    /// libssh2 1.10 has no helper for it). Message: socket path, reserved string, reserved uint32.
    public static func openStreamLocal(_ session: Session, path: String) throws(SSHError) -> Channel? {
        var message = Data()
        message.appendSSHString(Data(path.utf8))
        message.appendSSHString(Data())
        message.appendUInt32(0)
        return try open(session, type: "direct-streamlocal@openssh.com", message: message,
                        what: "opening a channel to \(path) on \(session.peer)")
    }

    /// A channel to a TCP port reachable from the server (direct-tcpip).
    public static func openDirectTCPIP(_ session: Session, host: String, port: Int) throws(SSHError) -> Channel? {
        let raw = libssh2_channel_direct_tcpip_ex(session.raw, host, Int32(port), "127.0.0.1", 0)
        if let raw { return Channel(raw: raw, session: session) }
        let code = libssh2_session_last_errno(session.raw)
        if code == LIBSSH2_ERROR_EAGAIN { return nil }
        throw SSHError.last(session.raw, code, "opening a channel to \(host):\(port) through \(session.peer)")
    }

    private static func open(_ session: Session, type: String, message: Data, what: String) throws(SSHError) -> Channel? {
        let raw = message.withUnsafeBytes { bytes in
            libssh2_channel_open_ex(
                session.raw, type, UInt32(type.utf8.count), windowSize, packetSize,
                bytes.baseAddress?.assumingMemoryBound(to: CChar.self), UInt32(message.count))
        }
        if let raw { return Channel(raw: raw, session: session) }
        let code = libssh2_session_last_errno(session.raw)
        if code == LIBSSH2_ERROR_EAGAIN { return nil }
        throw SSHError.last(session.raw, code, what)
    }

    /// Blocking open of a session channel (the session must be in blocking mode).
    public convenience init(session: Session) throws(SSHError) {
        guard let channel = try Channel.openSession(session) else {
            throw SSHError(kind: .library, code: LIBSSH2_ERROR_EAGAIN, message: "the session is in non-blocking mode",
                           operation: "opening a session channel")
        }
        self.init(raw: channel.raw, session: session)
        channel.freed = true  // ownership of the handle moved to self
    }

    // MARK: Data

    /// Reads what is there of a stream (0 = stdout, SSH_EXTENDED_DATA_STDERR = stderr).
    public func read(into buffer: UnsafeMutableRawBufferPointer, stream: Int32 = 0) throws(SSHError) -> ChannelIO {
        let count = libssh2_channel_read_ex(raw, stream, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count)
        if count > 0 { return .bytes(count) }
        if count == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        if count == 0 {
            // 0 means EOF in blocking mode; in non-blocking mode only if the server said so.
            return session.isBlocking || libssh2_channel_eof(raw) != 0 ? .eof : .wouldBlock
        }
        throw SSHError.last(session.raw, Int32(count), "reading from a channel")
    }

    /// Writes some of `bytes` to a stream; in blocking mode waits until at least part is sent.
    public func write(_ bytes: UnsafeRawBufferPointer, stream: Int32 = 0) throws(SSHError) -> ChannelIO {
        guard bytes.count > 0 else { return .bytes(0) }
        let count = libssh2_channel_write_ex(raw, stream, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
        if count > 0 { return .bytes(count) }
        if count == LIBSSH2_ERROR_EAGAIN || count == 0 { return .wouldBlock }
        throw SSHError.last(session.raw, Int32(count), "writing to a channel")
    }

    /// Writes all of `data` (blocking mode).
    public func writeAll(_ data: Data) throws(SSHError) {
        let bytes = [UInt8](data)
        var offset = 0
        while offset < bytes.count {
            let result = bytes.withUnsafeBytes { all in
                Result { () throws(SSHError) -> ChannelIO in try write(UnsafeRawBufferPointer(rebasing: all[offset...])) }
            }
            if case .bytes(let count) = try result.get() { offset += count }
        }
    }

    /// Reads a stream until the remote side closes it (blocking mode); more than `limit` bytes
    /// is an error (the peer may be a hostile guest).
    public func readAll(stream: Int32 = 0, limit: Int = .max) throws(SSHError) -> Data {
        var data = Data()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 32768, alignment: 1)
        defer { buffer.deallocate() }
        while true {
            switch try read(into: buffer, stream: stream) {
            case .bytes(let count):
                guard data.count + count <= limit else {
                    throw SSHError(kind: .remoteCommand, code: -1, message: "more than \(limit) bytes came back", operation: "reading a command's output")
                }
                data.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            case .eof: return data
            case .wouldBlock: continue
            }
        }
    }

    /// Half-closes: the remote side reads EOF; data can still come back. Returns false if it
    /// must be retried (non-blocking mode).
    @discardableResult
    public func sendEOF() throws(SSHError) -> Bool {
        let rc = libssh2_channel_send_eof(raw)
        if rc == LIBSSH2_ERROR_EAGAIN { return false }
        guard rc == 0 else { throw SSHError.last(session.raw, rc, "sending EOF on a channel") }
        return true
    }

    /// Whether a read of stream 0 could return anything (bytes, EOF or an error), without
    /// a system call: data or EOF already queued for this channel, or bytes the session's
    /// socket may hold (`Session.socketMayHoldInput`). When false, a read would only fail
    /// with EAGAIN, one recv(2) the caller can spare.
    public var mayHaveInput: Bool {
        if session.socketMayHoldInput || libssh2_channel_eof(raw) != 0 { return true }
        // Counts the data queued for this channel. (libssh2_poll_channel_read stops with an
        // error at the first packet shorter than a channel's, such as the reply to a keepalive.)
        var queued: UInt = 0
        _ = libssh2_channel_window_read_ex(raw, &queued, nil)
        return queued > 0
    }

    /// True once the server has sent EOF.
    public var receivedEOF: Bool { libssh2_channel_eof(raw) != 0 }

    /// Free space in the server's receive window: writes beyond it wait.
    public var writeWindow: Int { Int(libssh2_channel_window_write_ex(raw, nil)) }

    /// Closes and frees the channel without blocking. Returns true when done; false means
    /// call again when the session's socket is ready.
    public func finish() -> Bool {
        if freed { return true }
        if !closeSent {
            let rc = libssh2_channel_close(raw)
            if rc == LIBSSH2_ERROR_EAGAIN { return false }
            closeSent = true
        }
        let rc = libssh2_channel_free(raw)
        if rc == LIBSSH2_ERROR_EAGAIN { return false }
        freed = true
        return true
    }

    /// Closes the channel, waits for the server's close and returns the remote command's exit
    /// status (blocking mode). A command killed by a signal gives 128 + the signal's number
    /// when the signal's name is known, like a shell.
    public func close() throws(SSHError) -> Int32 {
        let rc = libssh2_channel_close(raw)
        closeSent = true
        guard rc == 0 else { throw SSHError.last(session.raw, rc, "closing a channel") }
        libssh2_channel_wait_closed(raw)
        var signal: UnsafeMutablePointer<CChar>?
        var length = 0
        libssh2_channel_get_exit_signal(raw, &signal, &length, nil, nil, nil, nil)
        if let signal {
            let name = String(cString: signal)
            free(signal)
            return 128 + (Channel.signalNumbers[name] ?? 127)
        }
        return libssh2_channel_get_exit_status(raw)
    }

    static let signalNumbers: [String: Int32] = [
        "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9, "SEGV": 11,
        "PIPE": 13, "ALRM": 14, "TERM": 15, "USR1": 10, "USR2": 12,
    ]
}

extension Data {
    mutating func appendUInt32(_ value: UInt32) {
        append(contentsOf: [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)])
    }

    /// An SSH wire-format string: uint32 length, then the bytes.
    mutating func appendSSHString(_ bytes: Data) {
        appendUInt32(UInt32(bytes.count))
        append(bytes)
    }
}
