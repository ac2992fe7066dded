import CLibSSH2
import Foundation

/// One channel of a session. Keeps its session alive for as long as it exists.
public final class Channel {
    let raw: OpaquePointer
    public let session: Session
    private var closed = false

    init(session: Session) throws(SSHError) {
        guard let channel = libssh2_channel_open_ex(
            session.raw, "session", 7, 2 * 1024 * 1024, 32768, nil, 0)
        else {
            throw SSHError.last(session.raw, -1, "opening a session channel")
        }
        self.raw = channel
        self.session = session
    }

    deinit {
        if !closed { libssh2_channel_close(raw) }
        libssh2_channel_free(raw)
    }

    func exec(_ command: String) throws(SSHError) {
        let rc = libssh2_channel_process_startup(raw, "exec", 4, command, UInt32(command.utf8.count))
        guard rc == 0 else { throw SSHError.last(session.raw, rc, "running \(command)") }
    }

    /// Reads a stream (0 = stdout, 1 = stderr) until the remote side closes it.
    func readAll(stream: Int32) throws(SSHError) -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 32768)
        while true {
            let count = buffer.withUnsafeMutableBytes { bytes in
                libssh2_channel_read_ex(raw, stream, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
            }
            if count > 0 {
                data.append(contentsOf: buffer[0..<count])
            } else if count == 0 {
                return data
            } else {
                throw SSHError.last(session.raw, Int32(count), "reading from the remote command")
            }
        }
    }

    /// Closes the channel and returns the remote command's exit status.
    func close() throws(SSHError) -> Int32 {
        closed = true
        let rc = libssh2_channel_close(raw)
        guard rc == 0 else { throw SSHError.last(session.raw, rc, "closing a channel") }
        libssh2_channel_wait_closed(raw)
        return libssh2_channel_get_exit_status(raw)
    }
}
