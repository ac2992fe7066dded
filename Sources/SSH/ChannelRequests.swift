import CLibSSH2
import FoundationEssentials

/// What a "session" channel asks the server to start (blocking mode): a command, a shell, a
/// subsystem, a terminal; and `Session.run`, one command to its end.
extension Channel {
    public func exec(_ command: String) throws(SSHError) {
        let rc = libssh2_channel_process_startup(raw, "exec", 4, command, UInt32(command.utf8.count))
        guard rc == 0 else { throw SSHError.last(session.raw, rc, "running \(command)") }
    }

    public func shell() throws(SSHError) {
        let rc = libssh2_channel_process_startup(raw, "shell", 5, nil, 0)
        guard rc == 0 else { throw SSHError.last(session.raw, rc, "starting a shell") }
    }

    public func subsystem(_ name: String) throws(SSHError) {
        let rc = libssh2_channel_process_startup(raw, "subsystem", 9, name, UInt32(name.utf8.count))
        guard rc == 0 else { throw SSHError.last(session.raw, rc, "starting the \(name) subsystem") }
    }

    /// Asks for a pseudo-terminal of this size, before `shell()` or `exec()`.
    public func requestPTY(term: String, columns: Int, rows: Int) throws(SSHError) {
        let rc = libssh2_channel_request_pty_ex(raw, term, UInt32(term.utf8.count), nil, 0,
                                                Int32(columns), Int32(rows), 0, 0)
        guard rc == 0 else { throw SSHError.last(session.raw, rc, "asking for a terminal") }
    }

    /// Tells the remote terminal its new size. Returns false if it must be retried
    /// (non-blocking mode).
    @discardableResult
    public func resizePTY(columns: Int, rows: Int) throws(SSHError) -> Bool {
        let rc = libssh2_channel_request_pty_size_ex(raw, Int32(columns), Int32(rows), 0, 0)
        if rc == LIBSSH2_ERROR_EAGAIN { return false }
        guard rc == 0 else { throw SSHError.last(session.raw, rc, "resizing the terminal") }
        return true
    }
}

extension Session {
    /// Runs one command on a channel of its own; returns its exit status and what it wrote to
    /// stdout and stderr. The host's commands in the guest answer in a few KiB: an answer over
    /// `limit` is an error, so a hostile guest cannot grow the caller's memory.
    public func run(_ command: String, limit: Int = 8 << 20) throws(SSHError) -> (status: Int32, output: Data, errors: Data) {
        let channel = try Channel(session: self)
        try channel.exec(command)
        let output = try channel.readAll(stream: 0, limit: limit)
        let errors = try channel.readAll(stream: SSH_EXTENDED_DATA_STDERR, limit: limit)
        return (try channel.close(), output, errors)
    }
}
