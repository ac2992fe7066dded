import Foundation
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The guest's DNS server, on the host: the guest sends every query for QEMU's 10.0.2.3 here
/// (boot.d/57-host-network.sh turns it to the gateway and this port, which QEMU delivers to
/// the host's loopback), and it answers as a program on the host would at that moment:
/// A and AAAA through the host's own getaddrinfo (its /etc/hosts, nsswitch, a resolver on its
/// loopback, a VPN's split DNS, all re-read by glibc as they change), and every other type
/// (SRV, TXT, MX, PTR...) relayed to the host's nameservers from /etc/resolv.conf, all at once,
/// so a nameserver that is down costs nothing while another answers. The names of the host
/// itself (host.docker.internal and its aliases) are answered here with the gateway.
/// QEMU's own 10.0.2.3 only relays packets to the host's first nameserver: no /etc/hosts, no
/// loopback resolver unless it is the first, no split DNS.
/// UDP and TCP on the same port (TCP for answers too large for a datagram); each query runs
/// on a worker of its own, at most `maxInFlight` at once, so a slow name never holds others.
public final class HostResolver: @unchecked Sendable {
    public struct Settings: Sendable {
        /// The host's loopback port QEMU delivers the guest's queries to.
        public var port: Int
        /// Names answered with `hostAddress` (lower case, no trailing dot).
        public var hostNames: [String]
        /// The address through which the guest reaches the host's loopback (QEMU's gateway).
        public var hostAddress: String
        /// Where the host's nameservers are listed.
        public var resolvConf: String
        /// TTL of the answers made here: short, so a change on the host shows at once.
        public var ttl: UInt32
        /// The nameservers' port (53; another in tests).
        public var upstreamPort: Int

        public init(port: Int, hostNames: [String], hostAddress: String, resolvConf: String = "/etc/resolv.conf", ttl: UInt32 = 1,
                    upstreamPort: Int = 53) {
            self.port = port
            self.hostNames = hostNames.map { $0.lowercased() }
            self.hostAddress = hostAddress
            self.resolvConf = resolvConf
            self.ttl = ttl
            self.upstreamPort = upstreamPort
        }
    }

    let settings: Settings
    let log: (String) -> Void
    static let maxInFlight = 64
    private let slots = DispatchSemaphore(value: HostResolver.maxInFlight)
    private let workers = DispatchQueue(label: "machine.resolver", attributes: .concurrent)
    private let stateLock = NSLock()
    private var dropped = 0
    private var nameservers: (mtime: timespec, list: [String]) = (timespec(), [])

    public init(_ settings: Settings, log: @escaping (String) -> Void) {
        self.settings = settings
        self.log = log
    }

    /// Binds both sockets now (the error says why not) and serves them on threads of their own.
    public func start() throws(SystemError) {
        let udp = try LocalSocket.bindLoopback(port: settings.port, type: SOCK_DGRAM)
        let tcp: Int32
        do {
            tcp = try LocalSocket.bindLoopback(port: settings.port, type: SOCK_STREAM)
        } catch {
            close(udp)
            throw error
        }
        guard listen(tcp, 64) == 0 else {
            let error = SystemError.last("listen on 127.0.0.1:\(settings.port)")
            close(udp)
            close(tcp)
            throw error
        }
        Thread.detachNewThread { [self] in serveUDP(udp) }
        Thread.detachNewThread { [self] in serveTCP(tcp) }
    }

    // MARK: Serving

    private func serveUDP(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var from = sockaddr_storage()
            var fromLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let count = withUnsafeMutablePointer(to: &from) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &fromLength) }
            }
            if count < 0 {
                if errno == EINTR { continue }
                log("resolver: UDP receive failed: \(String(cString: strerror(errno))); stopped")
                return
            }
            let query = Array(buffer[0..<count])
            guard takeSlot() else { continue }
            let client = from, clientLength = fromLength
            workers.async { [self] in
                defer { slots.signal() }
                guard let reply = answer(query, overTCP: false) else { return }
                var to = client
                _ = withUnsafePointer(to: &to) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, reply, reply.count, 0, $0, clientLength) }
                }
            }
        }
    }

    private func serveTCP(_ listener: Int32) {
        while true {
            let fd = accept(listener, nil, nil)
            if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED || errno == EMFILE { usleep(errno == EMFILE ? 100_000 : 0); continue }
                log("resolver: TCP accept failed: \(String(cString: strerror(errno))); stopped")
                return
            }
            guard takeSlot() else { close(fd); continue }
            workers.async { [self] in
                defer { slots.signal(); close(fd) }
                var timeout = timeval(tv_sec: 10, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                // Queries one after another on the connection, each behind its 2-byte length.
                while let length = Self.readExactly(fd, 2).map({ Int($0[0]) << 8 | Int($0[1]) }), length > 0,
                      let query = Self.readExactly(fd, length),
                      let reply = answer(query, overTCP: true) {
                    let framed = DNSQuery.be16(UInt16(reply.count)) + reply
                    guard Self.writeAll(fd, framed) else { return }
                }
            }
        }
    }

    /// A worker for the next query, or false (and counted) when all are busy: the query is
    /// dropped as a loaded server would, and the client asks again.
    private func takeSlot() -> Bool {
        if slots.wait(timeout: .now()) == .success { return true }
        stateLock.lock()
        dropped += 1
        let count = dropped
        stateLock.unlock()
        if count == 1 || count % 1000 == 0 {
            log("resolver: \(count) queries dropped so far: \(Self.maxInFlight) were being answered already")
        }
        return false
    }

    // MARK: Answering

    /// The reply to one query, or nil for bytes that are no query at all.
    public func answer(_ bytes: [UInt8], overTCP: Bool) -> [UInt8]? {
        let query: DNSQuery
        do {
            query = try DNSQuery(bytes)
        } catch .malformed(let id, let flags) {
            return DNSQuery.formatError(id: id, flags: flags)
        } catch {
            return nil
        }
        let limit = overTCP ? 65535 : query.udpPayloadSize
        guard query.opcode == 0 else { return query.answer(.notImplemented) }
        if settings.hostNames.contains(query.name) {
            guard query.qclass == DNSQuery.classIN, query.type == DNSQuery.typeA else { return query.answer(.noError) }
            return query.answer(.noError, records: Self.addressRecords([settings.hostAddress], type: DNSQuery.typeA, ttl: settings.ttl))
        }
        if query.qclass == DNSQuery.classIN && (query.type == DNSQuery.typeA || query.type == DNSQuery.typeAAAA) {
            return lookUp(query, limit: limit)
        }
        return relay(bytes, query: query, overTCP: overTCP)
    }

    /// A and AAAA through getaddrinfo, as a program on the host resolves, asking for the one
    /// family the query asks for: with AF_UNSPEC glibc sends A and AAAA queries together, and a
    /// resolver that drops some AAAA queries (dnsmasq does for a name it holds only an IPv4
    /// address of) then stalled 5 s in 1 lookup of 60 of an A record (docs/network.md). A name
    /// that has addresses of the other family only gets an empty NOERROR, never NXDOMAIN, or
    /// some clients (musl) would give up on the name altogether.
    func lookUp(_ query: DNSQuery, limit: Int) -> [UInt8] {
        let family = query.type == DNSQuery.typeA ? AF_INET : AF_INET6
        switch Self.addresses(of: query.name, family: family) {
        case .found(let addresses):
            return query.answer(.noError, records: Self.addressRecords(addresses, type: query.type, ttl: settings.ttl), limit: limit)
        case .failed:
            return query.answer(.serverFailure)
        case .none:
            if case .found = Self.addresses(of: query.name, family: family == AF_INET ? AF_INET6 : AF_INET) {
                return query.answer(.noError)
            }
            return query.answer(.nameError)
        case .noData:
            return query.answer(.noError)
        }
    }

    enum Lookup {
        case found([String])
        /// EAI_NONAME: no such name (as far as this family tells).
        case none
        /// The name exists without an address of this family.
        case noData
        /// The resolver failed (EAI_AGAIN and the like).
        case failed
    }

    static func addresses(of name: String, family: Int32) -> Lookup {
        var hints = addrinfo()
        hints.ai_family = family
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(name, nil, &hints, &list)
        defer { if let list { freeaddrinfo(list) } }
        switch status {
        case 0: break
        case EAI_NONAME: return .none
        // glibc's EAI_NODATA and EAI_ADDRFAMILY (GNU extensions Swift does not import).
        case -5, -9: return .noData
        default: return .failed
        }
        var found: [String] = []
        var entry = list
        while let info = entry?.pointee {
            if let address = info.ai_addr, info.ai_family == family {
                var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
                if family == AF_INET {
                    var sin = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
                    inet_ntop(AF_INET, &sin.sin_addr, &text, socklen_t(text.count))
                } else {
                    var sin6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
                    inet_ntop(AF_INET6, &sin6.sin6_addr, &text, socklen_t(text.count))
                }
                let address = String(cString: text)
                if !found.contains(address) { found.append(address) }
            }
            entry = info.ai_next
        }
        return found.isEmpty ? .noData : .found(found)
    }

    static func addressRecords(_ addresses: [String], type: UInt16, ttl: UInt32) -> [DNSQuery.Record] {
        addresses.compactMap { text in
            if type == DNSQuery.typeA {
                var address = in_addr()
                guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
                return DNSQuery.Record(type: type, ttl: ttl, data: withUnsafeBytes(of: &address) { Array($0) })
            }
            var address = in6_addr()
            guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
            return DNSQuery.Record(type: type, ttl: ttl, data: withUnsafeBytes(of: &address) { Array($0) })
        }
    }

    /// Any other type goes to every nameserver of the host at once, over the query's own
    /// transport; the first answer that is not SERVFAIL or REFUSED wins, within 3 s.
    func relay(_ bytes: [UInt8], query: DNSQuery, overTCP: Bool) -> [UInt8] {
        let servers = currentNameservers()
        guard !servers.isEmpty else { return query.answer(.serverFailure) }
        let answers = RelayAnswers(count: servers.count)
        let port = settings.upstreamPort
        for server in servers {
            Thread.detachNewThread {
                answers.put(Self.ask(server, port: port, bytes, id: query.id, overTCP: overTCP, timeout: 3))
            }
        }
        return answers.first(within: 3) ?? query.answer(.serverFailure)
    }

    /// The nameservers /etc/resolv.conf lists now (read again when it changes).
    func currentNameservers() -> [String] {
        var info = stat()
        let exists = stat(settings.resolvConf, &info) == 0
        stateLock.lock()
        defer { stateLock.unlock() }
        if exists && (info.st_mtim.tv_sec != nameservers.mtime.tv_sec || info.st_mtim.tv_nsec != nameservers.mtime.tv_nsec) {
            let text = (try? String(contentsOfFile: settings.resolvConf, encoding: .utf8)) ?? ""
            nameservers = (info.st_mtim, Self.nameservers(inResolvConf: text))
        }
        return nameservers.list
    }

    static func nameservers(inResolvConf text: String) -> [String] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 2, words[0] == "nameserver" else { return nil }
            // A scoped IPv6 address (fe80::1%eth0) keeps its scope for getaddrinfo below.
            return String(words[1])
        }
    }

    /// One exchange with one nameserver; nil on any failure or a reply that is not for us.
    static func ask(_ server: String, port: Int, _ query: [UInt8], id: UInt16, overTCP: Bool, timeout: Int) -> [UInt8]? {
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST
        hints.ai_socktype = Int32((overTCP ? SOCK_STREAM : SOCK_DGRAM).rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(server, String(port), &hints, &list) == 0, let info = list?.pointee else { return nil }
        defer { freeaddrinfo(list) }
        let fd = socket(info.ai_family, info.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var wait = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        // Connected, so the kernel drops datagrams from anyone but this server.
        guard connect(fd, info.ai_addr, info.ai_addrlen) == 0 else { return nil }
        let reply: [UInt8]
        if overTCP {
            guard writeAll(fd, DNSQuery.be16(UInt16(query.count)) + query),
                  let length = readExactly(fd, 2).map({ Int($0[0]) << 8 | Int($0[1]) }),
                  let body = readExactly(fd, length) else { return nil }
            reply = body
        } else {
            guard send(fd, query, query.count, 0) == query.count else { return nil }
            var buffer = [UInt8](repeating: 0, count: 65535)
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count >= 12 else { return nil }
            reply = Array(buffer[0..<count])
        }
        guard reply.count >= 12, UInt16(reply[0]) << 8 | UInt16(reply[1]) == id else { return nil }
        let code = reply[3] & 0x0F
        return code == 2 || code == 5 ? nil : reply
    }

    static func readExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
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

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let wrote = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if wrote < 0 && errno == EINTR { continue }
            guard wrote > 0 else { return false }
            done += wrote
        }
        return true
    }
}

/// The answers of the nameservers asked at once: the first good one, or nil when all failed
/// or the time ran out.
private final class RelayAnswers: @unchecked Sendable {
    private let condition = NSCondition()
    private var answer: [UInt8]?
    private var pending: Int

    init(count: Int) { pending = count }

    func put(_ reply: [UInt8]?) {
        condition.lock()
        pending -= 1
        if answer == nil { answer = reply }
        condition.broadcast()
        condition.unlock()
    }

    func first(within seconds: Double) -> [UInt8]? {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while answer == nil && pending > 0 {
            guard condition.wait(until: deadline) else { break }
        }
        return answer
    }
}
