import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The TCP connection under a session: made with a deadline, since the other end may be a
/// listener that accepts nothing.
extension Session {
    /// A connected TCP socket (close-on-exec, Nagle off), for sessions that need more than one.
    /// `timeout`: a listener that accepts nothing (a stopped QEMU's, whose backlog is full)
    /// fails the connect after this many seconds rather than leaving it to the kernel's minutes.
    public static func connectTCP(host: String, port: Int, timeout: Double = 10) throws(SSHError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let gai = getaddrinfo(host, String(port), &hints, &list)
        guard gai == 0, let first = list else {
            throw SSHError(kind: .system, code: gai, message: String(cString: gai_strerror(gai)), operation: "resolving \(host)")
        }
        defer { freeaddrinfo(list) }
        var lastErrno: Int32 = 0
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            // Close-on-exec: a process this one starts (the detached host agent) must not keep the
            // connection open after this session ends.
            let fd = Glibc.socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.pointee.ai_protocol)
            if fd >= 0 {
                if connectWithin(fd, info.pointee.ai_addr, info.pointee.ai_addrlen, timeout: timeout) {
                    var one: Int32 = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    return fd
                }
                lastErrno = errno
                close(fd)
            }
            entry = info.pointee.ai_next
        }
        throw SSHError(kind: .system, code: lastErrno, message: String(cString: strerror(lastErrno)), operation: "connecting to \(host):\(port)")
    }

    /// A blocking connect that gives up after `timeout` (errno ETIMEDOUT); the socket is left
    /// blocking, as it came.
    private static func connectWithin(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t, timeout: Double) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(fd, F_SETFL, flags) }
        if connect(fd, address, length) == 0 { return true }
        guard errno == EINPROGRESS else { return false }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { errno = ETIMEDOUT; return false }
            let ready = poll(&poller, 1, Int32(left * 1000) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { errno = ETIMEDOUT; return false }
            var error: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
            errno = error
            return error == 0
        }
    }
}
