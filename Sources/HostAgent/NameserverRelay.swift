import FoundationEssentials
import HostOS
#if canImport(Glibc)
import Glibc  // queries relayed to the host's nameservers on sockets of its own, with timeouts
#endif

/// What HostResolver does with every type but A and AAAA: the query goes as it is to every
/// nameserver of the host's resolv.conf at once, over the query's own transport, within 3 s.
/// SERVFAIL and REFUSED count as no answer. An answer with records wins at once, whoever gives
/// it, so a nameserver that is down costs nothing while another knows the name (Lima's
/// resolver asks them in turn). An answer without records (NXDOMAIN, or no data) speaks for
/// a server only once every server listed before it has failed: a VPN's nameserver, listed
/// first, knows names the public one after it denies at once, and the denial must not win by
/// being quicker.
final class NameserverRelay: @unchecked Sendable {
    let resolvConf: String
    /// The nameservers' port (53; another in tests).
    let port: Int
    static let timeout = 3
    private let lock = Lock()
    private var nameservers: (mtime: timespec, list: [String]) = (timespec(), [])

    init(resolvConf: String, port: Int) {
        self.resolvConf = resolvConf
        self.port = port
    }

    /// The answer to give to `query` (whose id is `id`; see above), or nil when none came.
    func relay(_ query: [UInt8], id: UInt16, overTCP: Bool) -> [UInt8]? {
        let servers = currentNameservers()
        guard !servers.isEmpty else { return nil }
        let answers = RelayAnswers(count: servers.count)
        let port = port
        for (index, server) in servers.enumerated() {
            Threads.detach {
                answers.put(index, Self.ask(server, port: port, query, id: id, overTCP: overTCP, timeout: Self.timeout))
            }
        }
        return answers.first(within: Double(Self.timeout))
    }

    /// The nameservers resolv.conf lists now (read again when it changes).
    func currentNameservers() -> [String] {
        var info = stat()
        let exists = stat(resolvConf, &info) == 0
        lock.lock()
        defer { lock.unlock() }
        if exists && (info.st_mtim.tv_sec != nameservers.mtime.tv_sec || info.st_mtim.tv_nsec != nameservers.mtime.tv_nsec) {
            let text = (try? String(contentsOfFile: resolvConf, encoding: .utf8)) ?? ""
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
            guard LocalSocket.writeAll(fd, DNSQuery.be16(UInt16(query.count)) + query),
                  let length = LocalSocket.readExactly(fd, 2).map({ Int($0[0]) << 8 | Int($0[1]) }),
                  let body = LocalSocket.readExactly(fd, length) else { return nil }
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
}

/// The answers of the nameservers asked at once, by their place in resolv.conf: the one to
/// give (see NameserverRelay), or nil when all failed or the time ran out with none to give.
private final class RelayAnswers: @unchecked Sendable {
    private enum Outcome { case pending, failed, reply([UInt8]) }
    private let condition = Condition()
    private var outcomes: [Outcome]

    init(count: Int) { outcomes = Array(repeating: .pending, count: count) }

    /// Server `index`'s reply, or nil for its failure.
    func put(_ index: Int, _ reply: [UInt8]?) {
        condition.lock()
        outcomes[index] = reply.map { .reply($0) } ?? .failed
        condition.broadcast()
        condition.unlock()
    }

    func first(within seconds: Double) -> [UInt8]? {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let chosen = chosen(final: false) { return chosen }
            guard outcomes.contains(where: { if case .pending = $0 { true } else { false } }) else { return nil }
            guard condition.wait(seconds: deadline.timeIntervalSinceNow) else { return chosen(final: true) }
        }
    }

    /// The reply to give now, if one is due: any with records; else the first in order once
    /// all before it failed. `final` (time is up): the first reply in order, whatever is pending.
    private func chosen(final: Bool) -> [UInt8]? {
        for case let .reply(reply) in outcomes where Self.hasRecords(reply) { return reply }
        for outcome in outcomes {
            switch outcome {
            case .reply(let reply): return reply
            case .failed: continue
            case .pending: if !final { return nil }
            }
        }
        return nil
    }

    /// Whether a reply's answer section holds a record (ANCOUNT, bytes 6-7 of the header).
    static func hasRecords(_ reply: [UInt8]) -> Bool {
        reply.count >= 12 && (reply[6] != 0 || reply[7] != 0)
    }
}
