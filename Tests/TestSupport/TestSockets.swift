import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Unix sockets for tests, and a server that proves a half-close arrived.
public enum TestSockets {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// A listening unix socket at `path` (anything there first is removed).
    public static func unixListener(_ path: String) throws -> Int32 {
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let bound = withAddress(path) { bind(fd, $0, $1) }
        guard bound == 0 && listen(fd, 4) == 0 else { throw Failure(description: "cannot listen at \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    /// A socket connected to the unix socket at `path`.
    public static func connectUnix(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard withAddress(path, { connect(fd, $0, $1) }) == 0 else {
            close(fd)
            throw Failure(description: "cannot connect to \(path): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// Serves one client on `fd`: reads to EOF, then answers "got N bytes" and closes. It only
    /// answers if the client's half-close reached it.
    @discardableResult
    public static func countingServer(listening fd: Int32) -> Thread {
        let thread = Thread {
            let client = accept(fd, nil, nil)
            var total = 0
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = recv(client, &buffer, buffer.count, 0)
                if count <= 0 { break }
                total += count
            }
            let reply = Array("got \(total) bytes".utf8)
            _ = send(client, reply, reply.count, 0)
            close(client)
            close(fd)
        }
        thread.start()
        return thread
    }

    private static func withAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
