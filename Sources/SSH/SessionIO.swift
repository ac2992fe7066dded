import CLibSSH2
#if canImport(Glibc)
import Glibc
#endif

// libssh2's socket callbacks for `Session`: whole packets out, counted reads in.

/// How long a packet may wait for room in the socket before the session is given up.
private let packetSendTimeoutMs: Int32 = 10_000

/// What libssh2's socket callbacks need of their session, reached through its abstract pointer:
/// the socket to write (a session may read one socket and write another), counts of what was
/// read and sent, so a caller can tell whether a call took in packets it did not ask for or
/// sent one, and whether the last read found the socket empty.
final class SessionIO {
    let sendSocket: Int32
    var bytesReceived: UInt64 = 0
    var bytesSent: UInt64 = 0
    /// False only while the last read of the socket found it empty (EAGAIN) and the socket
    /// was not reported readable since: then libssh2 holds no whole packet it has not taken
    /// in (it reads the socket only when its buffer holds less than one), and a channel read
    /// could only return what is already queued for that channel.
    var mayHoldInput = true

    init(sendSocket: Int32) {
        self.sendSocket = sendSocket
    }

    static func of(_ abstract: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> SessionIO {
        Unmanaged<SessionIO>.fromOpaque(abstract!.pointee!).takeUnretainedValue()
    }
}

/// libssh2's socket writes: each call is one packet (or what is left of it), and it goes out
/// whole, waiting for room in the socket if need be. libssh2 1.10 keeps a packet it could only
/// partly send as pending, and fails every other send until that same call is repeated
/// (LIBSSH2_ERROR_BAD_USE), so a non-blocking caller with several channels, keepalives and
/// window adjusts would break its own session; over a virtio-serial port, whose socket fills
/// whenever the guest is slower than the host, it did within seconds. A wait here holds up
/// only what could not move anyway: every channel shares this one socket.
let sendWholePackets: @convention(c) (libssh2_socket_t, UnsafeRawPointer?, Int, Int32,
                                             UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int = { _, buffer, length, flags, abstract in
    guard let buffer else { return 0 }
    let fd = SessionIO.of(abstract).sendSocket
    var sent = 0
    while sent < length {
        let count = Glibc.send(fd, buffer + sent, length - sent, flags | Int32(MSG_NOSIGNAL))
        if count > 0 {
            sent += count
            SessionIO.of(abstract).bytesSent &+= UInt64(count)
        } else if count < 0 && errno == EINTR {
            continue
        } else if count < 0 && errno == EAGAIN {
            var writable = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&writable, 1, packetSendTimeoutMs)
            if ready == 0 { return -Int(ETIMEDOUT) }
            if ready < 0 && errno != EINTR { return -Int(errno) }
        } else {
            return count < 0 ? -Int(errno) : sent
        }
    }
    return sent
}

/// libssh2's socket reads, as its own but counted.
let receiveCounted: @convention(c) (libssh2_socket_t, UnsafeMutableRawPointer?, Int, Int32,
                                           UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int = { fd, buffer, length, flags, abstract in
    let count = Glibc.recv(fd, buffer, length, flags)
    let io = SessionIO.of(abstract)
    if count < 0 {
        let error = errno
        io.mayHoldInput = error != EAGAIN && error != EWOULDBLOCK
        return -Int(error)
    }
    // Bytes (more may follow), or the end, which the next read must report.
    io.mayHoldInput = true
    io.bytesReceived &+= UInt64(count)
    return count
}
