import FoundationEssentials
import HostOS
import SSH
#if canImport(Glibc)
import Glibc  // an interactive shell relays the terminal: poll(2) on stdin and the channel, SIGWINCH
#endif

/// Write end of the SIGWINCH self-pipe (a signal handler can only touch globals).
nonisolated(unsafe) private var resizePipeWrite: Int32 = -1

/// `machine ssh`: one command, or a login shell on a pseudo-terminal, with the local
/// terminal's input, output and size carried over one channel.
public struct GuestShell {
    public let session: Session
    public let guest: GuestSSH

    public init(session: Session, guest: GuestSSH) {
        self.session = session
        self.guest = guest
    }

    /// Runs `command` (a shell when nil) and returns its exit status. With `terminal`, the
    /// remote side gets a PTY of the local terminal's size and the local terminal is put in
    /// raw mode until it ends.
    public func run(command: String?, terminal: Bool) throws(MachineError) -> Int32 {
        do {
            let channel = try Channel(session: session)
            var raw: RawTerminal?
            if terminal {
                let size = RawTerminal.size(of: STDIN_FILENO)
                let term = ProcessInfo.processInfo.environment["TERM"] ?? "xterm"
                try channel.requestPTY(term: term, columns: size.columns, rows: size.rows)
            }
            if let command { try channel.exec(command) } else { try channel.shell() }
            if terminal { raw = RawTerminal(STDIN_FILENO) }
            defer { raw?.restore() }
            return try pump(channel, terminal: terminal)
        } catch {
            throw GuestSSH.explain(error, name: guest.name, files: guest.files)
        }
    }

    private func pump(_ channel: Channel, terminal: Bool) throws(SSHError) -> Int32 {
        var pipeFDs: [Int32] = [-1, -1]
        if terminal && pipe(&pipeFDs) == 0 {
            resizePipeWrite = pipeFDs[1]
            signal(SIGWINCH) { _ in
                var byte: UInt8 = 1
                _ = write(resizePipeWrite, &byte, 1)
            }
        }
        defer {
            if pipeFDs[0] >= 0 {
                signal(SIGWINCH, SIG_DFL)
                close(pipeFDs[0])
                close(pipeFDs[1])
                resizePipeWrite = -1
            }
        }
        session.isBlocking = false
        defer { session.isBlocking = true }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 32768, alignment: 16)
        defer { buffer.deallocate() }
        var input = [UInt8]()
        var inputClosed = false
        var eofSent = false
        var outputDone = false
        var errorsDone = false
        var pendingResize = false
        while !(outputDone && errorsDone) {
            var fds = [pollfd(fd: session.socketDescriptor, events: Int16(POLLIN) | (session.blockedDirections.outbound ? Int16(POLLOUT) : 0), revents: 0)]
            if !inputClosed && input.isEmpty { fds.append(pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)) }
            if pipeFDs[0] >= 0 { fds.append(pollfd(fd: pipeFDs[0], events: Int16(POLLIN), revents: 0)) }
            _ = poll(&fds, nfds_t(fds.count), 200)
            for entry in fds where entry.revents != 0 {
                if entry.fd == STDIN_FILENO {
                    let count = read(STDIN_FILENO, buffer.baseAddress, buffer.count)
                    if count > 0 { input += UnsafeRawBufferPointer(rebasing: buffer[0..<count]) } else if count == 0 || errno != EINTR { inputClosed = true }
                } else if entry.fd == pipeFDs[0] {
                    var drain = [UInt8](repeating: 0, count: 64)
                    _ = read(pipeFDs[0], &drain, drain.count)
                    pendingResize = true
                }
            }
            if pendingResize {
                let size = RawTerminal.size(of: STDIN_FILENO)
                if try channel.resizePTY(columns: size.columns, rows: size.rows) { pendingResize = false }
            }
            while !input.isEmpty {
                let result = input.withUnsafeBytes { bytes in Result { () throws(SSHError) in try channel.write(bytes) } }
                guard case .bytes(let count) = try result.get() else { break }
                input.removeFirst(count)
            }
            // With a terminal, the end of local input is not the end of the session.
            if inputClosed && input.isEmpty && !eofSent && !terminal {
                if try channel.sendEOF() { eofSent = true }
            }
            outputDone = try copy(channel, stream: 0, to: STDOUT_FILENO, buffer: buffer) || outputDone
            errorsDone = try copy(channel, stream: Channel.stderrStream, to: STDERR_FILENO, buffer: buffer) || errorsDone
        }
        session.isBlocking = true
        return try channel.close()
    }

    /// Copies what is readable of one stream to a local descriptor; true at its EOF.
    private func copy(_ channel: Channel, stream: Int32, to fd: Int32, buffer: UnsafeMutableRawBufferPointer) throws(SSHError) -> Bool {
        while true {
            switch try channel.read(into: buffer, stream: stream) {
            case .bytes(let count):
                var offset = 0
                while offset < count {
                    let written = write(fd, buffer.baseAddress!.advanced(by: offset), count - offset)
                    if written < 0 {
                        if errno == EINTR || errno == EAGAIN { usleep(1000); continue }
                        return true  // our output is gone (a closed pipe): stop copying it
                    }
                    offset += written
                }
            case .eof: return true
            case .wouldBlock: return false
            }
        }
    }
}
