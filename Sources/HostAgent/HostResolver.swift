import FoundationEssentials
import Dispatch
import HostOS
#if canImport(Glibc)
import Glibc  // the DNS server for the guest: UDP and TCP sockets of its own, with timeouts
#endif

/// The guest's DNS server, on the host: the guest sends every query for QEMU's 10.0.2.3 here
/// (boot.d/57-host-network.sh turns it to the gateway and this port, which QEMU delivers to
/// the host's loopback), and it answers as a program on the host would at that moment:
/// A and AAAA through the host's own getaddrinfo (HostLookup), every other type (SRV, TXT, MX,
/// PTR...) relayed to the host's nameservers all at once (NameserverRelay). The names of the
/// host itself (host.docker.internal and its aliases) are answered here with the gateway.
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
    /// `settings.hostAddress` as an A record's data.
    let hostAddress: [UInt8]?
    let relay: NameserverRelay
    static let maxInFlight = 64
    private let slots = DispatchSemaphore(value: HostResolver.maxInFlight)
    private let workers = DispatchQueue(label: "machine.resolver", attributes: .concurrent)
    private let droppedLock = Lock()
    private var dropped = 0

    public init(_ settings: Settings, log: @escaping (String) -> Void) {
        self.settings = settings
        self.log = log
        hostAddress = HostLookup.ipv4Bytes(settings.hostAddress)
        relay = NameserverRelay(resolvConf: settings.resolvConf, port: settings.upstreamPort)
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
        Threads.detach { [self] in serveUDP(udp) }
        Threads.detach { [self] in serveTCP(tcp) }
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
                while let length = LocalSocket.readExactly(fd, 2).map({ Int($0[0]) << 8 | Int($0[1]) }), length > 0,
                      let query = LocalSocket.readExactly(fd, length),
                      let reply = answer(query, overTCP: true) {
                    let framed = DNSQuery.be16(UInt16(reply.count)) + reply
                    guard LocalSocket.writeAll(fd, framed) else { return }
                }
            }
        }
    }

    /// A worker for the next query, or false (and counted) when all are busy: the query is
    /// dropped as a loaded server would, and the client asks again.
    private func takeSlot() -> Bool {
        if slots.wait(timeout: .now()) == .success { return true }
        droppedLock.lock()
        dropped += 1
        let count = dropped
        droppedLock.unlock()
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
            guard query.qclass == DNSQuery.classIN, query.type == DNSQuery.typeA, let hostAddress else { return query.answer(.noError) }
            return query.answer(.noError, records: [.init(type: DNSQuery.typeA, ttl: settings.ttl, data: hostAddress)])
        }
        if query.qclass == DNSQuery.classIN && (query.type == DNSQuery.typeA || query.type == DNSQuery.typeAAAA) {
            return lookUp(query, limit: limit)
        }
        return relay.relay(bytes, id: query.id, overTCP: overTCP) ?? query.answer(.serverFailure)
    }

    /// A and AAAA through HostLookup. A name that has addresses of the other family only gets
    /// an empty NOERROR, never NXDOMAIN, or some clients (musl) would give up on the name
    /// altogether.
    func lookUp(_ query: DNSQuery, limit: Int) -> [UInt8] {
        let family = query.type == DNSQuery.typeA ? AF_INET : AF_INET6
        switch HostLookup.addresses(of: query.name, family: family) {
        case .found(let addresses):
            return query.answer(.noError, records: addresses.map { .init(type: query.type, ttl: settings.ttl, data: $0) }, limit: limit)
        case .failed:
            return query.answer(.serverFailure)
        case .none:
            if case .found = HostLookup.addresses(of: query.name, family: family == AF_INET ? AF_INET6 : AF_INET) {
                return query.answer(.noError)
            }
            return query.answer(.nameError)
        case .noData:
            return query.answer(.noError)
        }
    }
}
