import Foundation
import HostAgent
import HostOS
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A query as a stub resolver sends it: one question, RD set, optionally an EDNS OPT record.
func dnsQuery(_ name: String, type: UInt16, id: UInt16 = 0x1234, edns: UInt16? = nil) -> [UInt8] {
    var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns == nil ? 0 : 1]
    for label in name.split(separator: ".") {
        bytes.append(UInt8(label.utf8.count))
        bytes += Array(label.utf8)
    }
    bytes += [0, UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
    if let edns { bytes += [0, 0, 41, UInt8(edns >> 8), UInt8(edns & 0xFF), 0, 0, 0, 0, 0, 0] }
    return bytes
}

/// What a reply says: its id, rcode, TC bit and the data of its answer records.
struct DNSReply {
    let id: UInt16
    let rcode: UInt8
    let truncated: Bool
    let answers: [(type: UInt16, data: [UInt8])]

    init(_ bytes: [UInt8]) throws {
        guard bytes.count >= 12 else { throw POSIXError(.EBADMSG) }
        id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        rcode = bytes[3] & 0x0F
        truncated = bytes[2] & 0x02 != 0
        let count = Int(bytes[6]) << 8 | Int(bytes[7])
        let questions = Int(bytes[4]) << 8 | Int(bytes[5])
        var offset = 12
        if questions > 0 {
            while offset < bytes.count && bytes[offset] != 0 { offset += Int(bytes[offset]) + 1 }
            offset += 5
        }
        var answers: [(UInt16, [UInt8])] = []
        for _ in 0..<count {
            guard offset + 12 <= bytes.count, bytes[offset] == 0xC0 else { throw POSIXError(.EBADMSG) }
            let type = UInt16(bytes[offset + 2]) << 8 | UInt16(bytes[offset + 3])
            let length = Int(bytes[offset + 10]) << 8 | Int(bytes[offset + 11])
            guard offset + 12 + length <= bytes.count else { throw POSIXError(.EBADMSG) }
            answers.append((type, Array(bytes[(offset + 12)..<(offset + 12 + length)])))
            offset += 12 + length
        }
        self.answers = answers
    }

    var addresses: [String] {
        answers.map { answer in
            var text = [CChar](repeating: 0, count: 64)
            answer.data.withUnsafeBytes { _ = inet_ntop(answer.data.count == 4 ? AF_INET : AF_INET6, $0.baseAddress, &text, 64) }
            return String(cString: text)
        }
    }
}

@Suite struct DNSQueryTests {
    @Test func aQueryGivesItsNameLowerCasedAndItsEDNSPayload() throws {
        let query = try DNSQuery(dnsQuery("Host.Docker.Internal", type: DNSQuery.typeAAAA, edns: 1232))
        #expect(query.name == "host.docker.internal" && query.type == DNSQuery.typeAAAA && query.id == 0x1234)
        #expect(query.hasEDNS && query.udpPayloadSize == 1232)
        #expect(try DNSQuery(dnsQuery("example.com", type: 1)).udpPayloadSize == 512)
    }

    @Test func malformedQueriesAreRefusedNotRead() throws {
        // Too short to have an id: nothing to answer.
        #expect(throws: DNSQuery.ParseError.unreadable) { try DNSQuery([1, 2, 3]) }
        // Two questions; a name cut short; a compression pointer to itself; a response.
        var two = dnsQuery("a.b", type: 1)
        two[5] = 2
        var loop = dnsQuery("a", type: 1)
        loop[12] = 0xC0
        loop[13] = 12
        var response = dnsQuery("a.b", type: 1)
        response[2] |= 0x80
        for bad in [two, Array(dnsQuery("example.com", type: 1).prefix(16)), loop, response] {
            #expect(throws: DNSQuery.ParseError.malformed(id: 0x1234, flags: UInt16(bad[2]) << 8 | UInt16(bad[3]))) { try DNSQuery(bad) }
        }
        // A dot or NUL inside a label would ask getaddrinfo for another name.
        var dotted = dnsQuery("ab.c", type: 1)
        dotted[14] = UInt8(ascii: ".")
        #expect(throws: DNSQuery.ParseError.self) { try DNSQuery(dotted) }
        // So would a byte outside printable ASCII, decoded as UTF-8 (found by MachineFuzz).
        for byte: UInt8 in [0x0A, 0x20, 0x7F, 0xC3, 0xFF] {
            var odd = dnsQuery("ab.c", type: 1)
            odd[14] = byte
            #expect(throws: DNSQuery.ParseError.self) { try DNSQuery(odd) }
        }
        #expect(try DNSQuery(dnsQuery("_http._tcp.xn--bcher-kva.example", type: 1)).name == "_http._tcp.xn--bcher-kva.example")
    }

    @Test func anyBytesAtAllNeitherCrashNorHang() {
        // What a hostile guest can send: every prefix of a query, and random mutations of it.
        var generator = SystemRandomNumberGenerator()
        let valid = dnsQuery("host.docker.internal", type: 1, edns: 4096)
        for length in 0...valid.count { _ = try? DNSQuery(Array(valid.prefix(length))) }
        for _ in 0..<20_000 {
            var bytes = valid
            for _ in 0..<Int.random(in: 1...6, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            if let query = try? DNSQuery(bytes) {
                #expect(query.answer(.noError).count >= 12)
            }
        }
    }

    @Test func answersThatDoNotFitAreTruncatedWithTC() throws {
        let query = try DNSQuery(dnsQuery("many.example", type: DNSQuery.typeA))
        let records = (0..<100).map { DNSQuery.Record(type: DNSQuery.typeA, ttl: 1, data: [10, 0, 0, UInt8($0)]) }
        let reply = try DNSReply(query.answer(.noError, records: records, limit: 512))
        #expect(reply.truncated && reply.answers.count < 100 && reply.answers.count > 20)
    }
}

@Suite struct HostResolverTests {
    func resolver(resolvConf: String = "/nonexistent", upstreamPort: Int = 53) -> HostResolver {
        HostResolver(.init(port: 0, hostNames: ["host.docker.internal", "gateway.docker.internal"], hostAddress: "10.0.2.2",
                           resolvConf: resolvConf, upstreamPort: upstreamPort), log: { _ in })
    }

    @Test func theHostsNamesAreTheGateway() throws {
        let resolver = resolver()
        let a = try DNSReply(#require(resolver.answer(dnsQuery("HOST.docker.internal", type: DNSQuery.typeA, id: 7), overTCP: false)))
        #expect(a.id == 7 && a.rcode == 0 && a.addresses == ["10.0.2.2"])
        // The name exists without an IPv6 address: NOERROR and no answer, never NXDOMAIN.
        let aaaa = try DNSReply(#require(resolver.answer(dnsQuery("gateway.docker.internal", type: DNSQuery.typeAAAA), overTCP: false)))
        #expect(aaaa.rcode == 0 && aaaa.answers.isEmpty)
    }

    @Test func namesResolveAsThisHostDoes() throws {
        // localhost comes from this host's /etc/hosts through getaddrinfo.
        let reply = try DNSReply(#require(resolver().answer(dnsQuery("localhost", type: DNSQuery.typeA), overTCP: false)))
        #expect(reply.rcode == 0 && reply.addresses.contains("127.0.0.1"))
    }

    @Test func garbageGetsFormErrOrNothing() throws {
        let resolver = resolver()
        #expect(resolver.answer([0, 1], overTCP: false) == nil)
        var two = dnsQuery("a.b", type: 1)
        two[5] = 2
        #expect(try DNSReply(#require(resolver.answer(two, overTCP: false))).rcode == 1)
    }

    /// A nameserver on loopback that answers one UDP query with `code` and `records`, after
    /// `delay` seconds (as a VPN's resolver, or a public one that denies at once).
    static func answerOnce(_ fd: Int32, after delay: Double, _ code: DNSQuery.ResponseCode, records: [DNSQuery.Record] = []) {
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 512)
            var from = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let count = withUnsafeMutablePointer(to: &from) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, 512, 0, $0, &length) }
            }
            guard count > 0, let query = try? DNSQuery(Array(buffer[0..<count])) else { return }
            Thread.sleep(forTimeInterval: delay)
            let reply = query.answer(code, records: records)
            _ = withUnsafePointer(to: &from) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, reply, reply.count, 0, $0, length) }
            }
        }
    }

    /// A resolv.conf of `text` in a folder of its own; the caller removes the folder.
    static func resolvConf(_ text: String) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("resolver-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let conf = folder.appendingPathComponent("resolv.conf")
        try text.write(to: conf, atomically: true, encoding: .utf8)
        return conf
    }

    /// Other types go to every nameserver of resolv.conf at once: one that never answers does
    /// not keep the answer of one that does.
    @Test func otherTypesAreRelayedToEveryNameserverAtOnce() throws {
        let port = try LocalSocket.freeLoopbackPortForUDPAndTCP()
        let silent = try LocalSocket.bindLoopback(address: "127.0.0.2", port: port, type: SOCK_DGRAM)
        defer { close(silent) }
        let answering = try LocalSocket.bindLoopback(address: "127.0.0.3", port: port, type: SOCK_DGRAM)
        defer { close(answering) }
        let conf = try Self.resolvConf("# the host's\nnameserver 127.0.0.2\nnameserver 127.0.0.3\noptions timeout:5\n")
        defer { try? FileManager.default.removeItem(at: conf.deletingLastPathComponent()) }
        // The upstream that answers, with one TXT record.
        Self.answerOnce(answering, after: 0, .noError, records: [.init(type: 16, ttl: 60, data: [5] + Array("hello".utf8))])
        let resolver = resolver(resolvConf: conf.path, upstreamPort: port)
        let reply = try DNSReply(#require(resolver.answer(dnsQuery("_x._tcp.example.test", type: 16, id: 99), overTCP: false)))
        #expect(reply.id == 99 && reply.rcode == 0 && reply.answers.first?.data == [5] + Array("hello".utf8))
        // The silent one was asked too: by a thread of its own, which the answer may have
        // beaten to its sendto.
        var buffer = [UInt8](repeating: 0, count: 512)
        var poller = pollfd(fd: silent, events: Int16(POLLIN), revents: 0)
        #expect(poll(&poller, 1, 2000) == 1)
        #expect(recv(silent, &buffer, 512, Int32(MSG_DONTWAIT)) > 12)
    }

    /// Split DNS: the first nameserver of resolv.conf (a VPN's) knows a name that the second
    /// (a public one) denies at once. The denial must not win by being quicker; but once the
    /// first has failed (REFUSED), the second's denial is the answer, without waiting.
    @Test func aQuickDenialFromALaterNameserverDoesNotBeatAnEarlierOnesAnswer() throws {
        let port = try LocalSocket.freeLoopbackPortForUDPAndTCP()
        let vpn = try LocalSocket.bindLoopback(address: "127.0.0.2", port: port, type: SOCK_DGRAM)
        defer { close(vpn) }
        let publicOne = try LocalSocket.bindLoopback(address: "127.0.0.3", port: port, type: SOCK_DGRAM)
        defer { close(publicOne) }
        let conf = try Self.resolvConf("nameserver 127.0.0.2\nnameserver 127.0.0.3\n")
        defer { try? FileManager.default.removeItem(at: conf.deletingLastPathComponent()) }
        let resolver = resolver(resolvConf: conf.path, upstreamPort: port)
        let srv = DNSQuery.Record(type: 33, ttl: 60, data: [0, 1, 0, 1, 0x1f, 0x90, 0])
        Self.answerOnce(vpn, after: 0.3, .noError, records: [srv])
        Self.answerOnce(publicOne, after: 0, .nameError)
        let known = try DNSReply(#require(resolver.answer(dnsQuery("_svc._tcp.corp.test", type: 33, id: 5), overTCP: false)))
        #expect(known.id == 5 && known.rcode == 0 && known.answers.first?.data == srv.data)
        // Each server has answered its one query: the same two answer the next.
        Self.answerOnce(vpn, after: 0, .refused)
        Self.answerOnce(publicOne, after: 0.1, .nameError)
        let started = Date()
        let denied = try DNSReply(#require(resolver.answer(dnsQuery("_svc._tcp.nowhere.test", type: 33, id: 6), overTCP: false)))
        #expect(denied.id == 6 && denied.rcode == 3)
        #expect(Date().timeIntervalSince(started) < 2, "a denial after the earlier server failed waits for nothing")
    }

    @Test func itServesUDPAndTCPOnItsPort() throws {
        let port = try LocalSocket.freeLoopbackPortForUDPAndTCP()
        let resolver = HostResolver(.init(port: port, hostNames: ["host.docker.internal"], hostAddress: "10.0.2.2"), log: { _ in })
        try resolver.start()
        // UDP
        let udp = try LocalSocket.bindLoopback(port: 0, type: SOCK_DGRAM)
        defer { close(udp) }
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_port = in_port_t(UInt16(port).bigEndian)
        to.sin_addr.s_addr = inet_addr("127.0.0.1")
        let query = dnsQuery("host.docker.internal", type: DNSQuery.typeA, id: 42)
        _ = withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(udp, query, query.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var wait = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(udp, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = recv(udp, &buffer, 512, 0)
        #expect(try DNSReply(Array(buffer[0..<max(count, 0)])).addresses == ["10.0.2.2"])
        // TCP: two queries on one connection, each behind its length.
        let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(tcp) }
        setsockopt(tcp, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        #expect(withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(tcp, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0)
        for id: UInt16 in [1, 2] {
            let framed = [UInt8(0), UInt8(query.count)] + dnsQuery("host.docker.internal", type: DNSQuery.typeA, id: id)
            #expect(write(tcp, framed, framed.count) == framed.count)
            var length = [UInt8](repeating: 0, count: 2)
            #expect(recv(tcp, &length, 2, Int32(MSG_WAITALL)) == 2)
            var body = [UInt8](repeating: 0, count: Int(length[0]) << 8 | Int(length[1]))
            #expect(recv(tcp, &body, body.count, Int32(MSG_WAITALL)) == body.count)
            let reply = try DNSReply(body)
            #expect(reply.id == id && reply.addresses == ["10.0.2.2"])
        }
    }
}
