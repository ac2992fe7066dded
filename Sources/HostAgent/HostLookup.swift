#if canImport(Glibc)
import Glibc  // getaddrinfo(3): names resolved as the host resolves them, for host.docker.internal and the DNS relay
#endif

/// A and AAAA as a program on this host resolves them: getaddrinfo, so the host's /etc/hosts,
/// nsswitch, a resolver on its loopback and a VPN's split DNS all count, re-read by glibc as
/// they change. One family at a time: with AF_UNSPEC glibc sends A and AAAA queries together,
/// and a resolver that drops some AAAA queries (dnsmasq does for a name it holds only an IPv4
/// address of) then stalled 5 s in 1 lookup of 60 of an A record (docs/network.md).
enum HostLookup {
    enum Result {
        /// The addresses, as the bytes of an A or AAAA record, without repeats.
        case found([[UInt8]])
        /// EAI_NONAME: no such name (as far as this family tells).
        case none
        /// The name exists without an address of this family.
        case noData
        /// The resolver failed (EAI_AGAIN and the like).
        case failed
    }

    static func addresses(of name: String, family: Int32) -> Result {
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
        var found: [[UInt8]] = []
        var entry = list
        while let info = entry?.pointee {
            if let address = info.ai_addr, info.ai_family == family {
                let bytes = family == AF_INET
                    ? address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in withUnsafeBytes(of: pointer.pointee.sin_addr) { Array($0) } }
                    : address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) } }
                if !found.contains(bytes) { found.append(bytes) }
            }
            entry = info.ai_next
        }
        return found.isEmpty ? .noData : .found(found)
    }

    /// The bytes of an IPv4 address given as text (an A record's data), nil for anything else.
    static func ipv4Bytes(_ text: String) -> [UInt8]? {
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: &address) { Array($0) }
    }
}
