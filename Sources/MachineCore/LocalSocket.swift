import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Host-side sockets the agent listens on and the CLI connects to.
public enum LocalSocket {
    /// Listens on a unix socket at `path`, readable and writable by its owner only. A stale
    /// socket left by a dead agent is removed first; anything else at the path is refused.
    public static func listenUnix(_ path: String) throws(MachineError) -> Int32 {
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw MachineError("\(path) exists and is not a socket; not replacing it", hint: "move it away")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw MachineError("cannot make a socket: \(String(cString: strerror(errno)))") }
        // The socket file is made with these bits: never readable by others, not even briefly.
        let oldMask = umask(0o177)
        defer { umask(oldMask) }
        let bound = withUnixAddress(path) { address, length in bind(fd, address, length) == 0 }
        guard bound, listen(fd, 128) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw MachineError("cannot listen on \(path): \(reason)")
        }
        return fd
    }

    /// Connects to a unix socket; the descriptor, or nil with errno set.
    public static func connectUnix(_ path: String) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        if withUnixAddress(path, { address, length in connect(fd, address, length) == 0 }) { return fd }
        let saved = errno
        close(fd)
        errno = saved
        return nil
    }

    static func withUnixAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(MemoryLayout.size(ofValue: address.sun_path) - 1))
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// Asks the engine behind a unix socket for `/_ping`; true if it answered OK.
    public static func enginePing(_ path: String, timeout: Double = 5) -> Bool {
        guard let fd = connectUnix(path) else { return false }
        defer { close(fd) }
        var time = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return false }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while response.count < 65536 {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            response += buffer[0..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        return text.hasPrefix("HTTP/1.1 200") && text.hasSuffix("OK")
    }
}
