import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Host-side sockets the agent listens on and the CLI connects to.
public enum LocalSocket {
    /// A TCP port on 127.0.0.1 that nobody listens on now (the kernel picks it).
    public static func freeLoopbackPort() throws(SystemError) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, let port = boundPort(of: fd) else { throw SystemError.last("find a free port on 127.0.0.1") }
        return port
    }

    /// The local port an IPv4 socket is bound to.
    static func boundPort(of fd: Int32) -> Int? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        return ok ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }

    /// A port on 127.0.0.1 that is free for both UDP and TCP now (a DNS server takes both):
    /// the kernel picks a UDP port, and it is kept only if TCP can bind it too.
    public static func freeLoopbackPortForUDPAndTCP() throws(SystemError) -> Int {
        for _ in 0..<20 {
            let udp = try bindLoopback(port: 0, type: SOCK_DGRAM)
            defer { close(udp) }
            guard let port = boundPort(of: udp) else { throw SystemError.last("find a free port on 127.0.0.1") }
            if let tcp = try? bindLoopback(port: port, type: SOCK_STREAM) {
                close(tcp)
                return port
            }
        }
        throw SystemError("find a port on 127.0.0.1 free for both UDP and TCP", code: EADDRINUSE)
    }

    /// A socket of `type` bound to `address`:`port` (an IPv4 address of the loopback; blocking,
    /// close-on-exec; TCP ones with SO_REUSEADDR, as servers bind), not yet listening.
    public static func bindLoopback(address: String = "127.0.0.1", port: Int, type: __socket_type) throws(SystemError) -> Int32 {
        let fd = socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError.last("make a socket") }
        if type == SOCK_STREAM {
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = in_port_t(UInt16(port).bigEndian)
        socketAddress.sin_addr.s_addr = inet_addr(address)
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let error = SystemError.last("bind \(type == SOCK_DGRAM ? "UDP" : "TCP") \(address):\(port)")
            close(fd)
            throw error
        }
        return fd
    }

    /// Reads exactly `count` bytes from a blocking socket; nil at EOF, on an error or a timeout.
    public static func readExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, count - done) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { return nil }
            done += got
        }
        return bytes
    }

    /// Writes all of `bytes` to a blocking socket; false on an error or a timeout.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let wrote = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if wrote < 0 && errno == EINTR { continue }
            guard wrote > 0 else { return false }
            done += wrote
        }
        return true
    }

    /// Whether `text` is an IPv4 or IPv6 address in its numeric form.
    public static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    /// Listens on a unix socket at `path`, readable and writable by its owner only. A stale
    /// socket left by a dead agent is removed first; anything else at the path is refused.
    public static func listenUnix(_ path: String) throws(SystemError) -> Int32 {
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw SystemError("listen on \(path)", code: EEXIST, detail: "it exists and is not a socket; not replacing it")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError.last("make a socket") }
        // The socket file is made with these bits: never readable by others, not even briefly.
        let oldMask = umask(0o177)
        defer { umask(oldMask) }
        let bound = withUnixAddress(path) { address, length in bind(fd, address, length) == 0 }
        guard bound, listen(fd, 128) == 0 else {
            let error = SystemError.last("listen on \(path)")
            close(fd)
            throw error
        }
        return fd
    }

    /// Listens on a TCP address (IPv4 or IPv6 literal) and port; the descriptor, or the errno.
    public static func listenTCP(address: String, port: Int) -> Result<Int32, POSIXError> {
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        let isV6 = address.contains(":")
        if isV6 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, address, &v6.sin6_addr) == 1 else { return .failure(POSIXError(.EINVAL)) }
        } else {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, address, &v4.sin_addr) == 1 else { return .failure(POSIXError(.EINVAL)) }
        }
        let fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .failure(POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = isV6
            ? withUnsafePointer(to: &v6) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
            : withUnsafePointer(to: &v4) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 128) == 0 else {
            let code = POSIXErrorCode(rawValue: errno) ?? .EIO
            close(fd)
            return .failure(POSIXError(code))
        }
        return .success(fd)
    }

    /// Who listens on a local TCP port, as "pid 123 (nginx)", if this user may see it: the
    /// socket's inode from /proc/net/tcp{,6}, then the process holding it under /proc/*/fd.
    public static func holder(ofTCPPort port: Int) -> String? {
        holder(ofPort: port, tables: ["/proc/net/tcp", "/proc/net/tcp6"], state: "0A")
    }

    /// Who has a local UDP port bound, the same way.
    public static func holder(ofUDPPort port: Int) -> String? {
        holder(ofPort: port, tables: ["/proc/net/udp", "/proc/net/udp6"], state: nil)
    }

    static func holder(ofPort port: Int, tables: [String], state: Substring?) -> String? {
        var inodes = Set<String>()
        for table in tables {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                // local_address is HEXIP:HEXPORT; state 0A is LISTEN (TCP); inode is field 9.
                guard fields.count > 9, state.map({ fields[3] == $0 }) ?? true, let colon = fields[1].lastIndex(of: ":"),
                      Int(fields[1][fields[1].index(after: colon)...], radix: 16) == port else { continue }
                inodes.insert(String(fields[9]))
            }
        }
        guard !inodes.isEmpty else { return nil }
        let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for pid in processes where Int(pid) != nil {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            for fd in fds {
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                      target.hasPrefix("socket:["), inodes.contains(String(target.dropFirst(8).dropLast())) else { continue }
                let name = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?
                    .trimmed() ?? "?"
                return "pid \(pid) (\(name))"
            }
        }
        return nil
    }

    /// Connects to a unix socket; the descriptor, or nil with errno set.
    /// `timeout`: a listener whose backlog is full (a stopped QEMU's accepts nothing) makes a
    /// blocking connect wait for ever; this one tries again until then, and fails EAGAIN.
    public static func connectUnix(_ path: String, timeout: Double = 10) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return nil }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if withUnixAddress(path, { address, length in connect(fd, address, length) == 0 }) {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
                return fd
            }
            guard errno == EAGAIN || errno == EINTR, Date() < deadline else { break }
            usleep(50_000)
        }
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
}
