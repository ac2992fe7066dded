import FoundationEssentials
import HostOS

/// A manual forward kept in the machine's config: `machine port add HOSTPORT:GUESTPORT[/udp]`.
public struct ManualForward: Codable, Sendable, Equatable, Hashable {
    public var hostPort: Int
    public var guestPort: Int
    /// "tcp" or "udp".
    public var proto: String

    public init(hostPort: Int, guestPort: Int, proto: String = "tcp") {
        self.hostPort = hostPort
        self.guestPort = guestPort
        self.proto = proto
    }

    // Forwards kept before UDP was offered are TCP.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hostPort = try c.decode(Int.self, forKey: .hostPort)
        guestPort = try c.decode(Int.self, forKey: .guestPort)
        proto = try c.decodeIfPresent(String.self, forKey: .proto) ?? "tcp"
    }

    /// "8080:80", "8080" for the same port on both sides, either with "/udp" or "/tcp".
    public init(parsing text: String) throws(MachineError) {
        var ports = text
        var proto = "tcp"
        if let slash = text.lastIndex(of: "/") {
            proto = text[text.index(after: slash)...].lowercased()
            ports = String(text[..<slash])
        }
        let parts = ports.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard ["tcp", "udp"].contains(proto), (1...2).contains(parts.count), let host = Int(parts[0]), let guest = Int(parts[parts.count - 1]),
              (1...65535).contains(host), (1...65535).contains(guest)
        else {
            throw MachineError("invalid forward \"\(text)\"", hint: "write HOSTPORT:GUESTPORT[/udp], e.g. 8080:80 or 5353:53/udp (ports 1-65535)", kind: .usage)
        }
        self.init(hostPort: host, guestPort: guest, proto: proto)
    }

    public var description: String { "\(hostPort):\(guestPort)" + (proto == "tcp" ? "" : "/\(proto)") }
}

/// One forward the agent should have open: a host address and port to a port in the guest.
public struct PortForward: Codable, Sendable, Equatable, Hashable {
    public enum Kind: String, Codable, Sendable {
        /// Published by a container (`docker run -p`).
        case automatic
        /// Added with `machine port add`.
        case manual
        /// The engine's TLS endpoint (`--tls`).
        case engineTLS
    }
    public var kind: Kind
    public var proto: String
    public var hostAddress: String
    public var hostPort: Int
    public var guestAddress: String
    public var guestPort: Int
    /// The container that published it (automatic forwards).
    public var container: String?

    /// Who asked for it: the container, `port add` ("manual") or `--tls` ("engine TLS").
    public var origin: String {
        switch kind {
        case .automatic: container ?? "-"
        case .manual: "manual"
        case .engineTLS: "engine TLS"
        }
    }

    public init(kind: Kind, proto: String = "tcp", hostAddress: String, hostPort: Int, guestAddress: String = "127.0.0.1",
                guestPort: Int, container: String? = nil) {
        self.kind = kind
        self.proto = proto
        self.hostAddress = hostAddress
        self.hostPort = hostPort
        self.guestAddress = guestAddress
        self.guestPort = guestPort
        self.container = container
    }

    /// Identity on the host: two forwards cannot share a host address, port and protocol.
    public var hostKey: String { "\(proto)/\(hostAddress):\(hostPort)" }
}

/// What `machine port ls` shows: each forward and how it stands, written by the agent.
public struct ForwardStatus: Codable, Sendable, Equatable {
    public var forward: PortForward
    /// "forwarding", or why not ("not forwarded: ...", "error: ...").
    public var state: String

    public init(forward: PortForward, state: String) {
        self.forward = forward
        self.state = state
    }

    public var isForwarding: Bool { state == "forwarding" }
}

public enum PortForwards {
    /// A host address to publish on: an IPv4 or IPv6 literal.
    public static func validateAddress(_ address: String) throws(MachineError) {
        guard isAddress(address) else {
            throw MachineError("invalid --publish-address \"\(address)\"", hint: "give an IP address of this host, e.g. 127.0.0.1 (the default) or 0.0.0.0 for every interface", kind: .usage)
        }
    }

    /// The forwards that running containers ask for, from the engine's `GET /containers/json`.
    public static func automatic(containersJSON: Data, publishAddress: String, sshPort: Int) -> [PortForward] {
        automatic(containers: ListedContainer.list(containersJSON) ?? [], publishAddress: publishAddress, sshPort: sshPort)
    }

    /// The forwards that these running containers ask for, in the engine's order (newest
    /// first: of two asking for one host port, the first wins).
    /// A port published on any address (0.0.0.0, ::, empty) or on the guest's loopback is
    /// forwarded from `publishAddress` on the host (127.0.0.1 unless the user chose another);
    /// never wider than that. TCP goes over SSH, UDP through QEMU (QEMUForwards).
    public static func automatic(containers: [ListedContainer], publishAddress: String, sshPort: Int) -> [PortForward] {
        var seen = Set<String>()
        var forwards: [PortForward] = []
        for container in containers {
            let name = containerName(container.names?.first ?? String(container.id.prefix(12)))
            for port in container.ports ?? [] {
                guard let published = port.forwardablePort else { continue }
                let ip = port.ip ?? ""
                guard ip.isEmpty || isAddress(ip) else { continue }
                let anyAddress = ["", "0.0.0.0", "::"].contains(ip) || ip.contains(":")
                // The guest side. TCP goes through sshd to docker-proxy, which listens on the
                // published address in the guest. UDP comes from QEMU to the guest's own address,
                // where the engine's DNAT takes it, unless the port is published on the guest's
                // loopback only (QEMUForwards.guestTarget).
                let guestAddress = port.type == "udp"
                    ? (anyAddress ? GuestContract.guestAddress : ip)
                    : (anyAddress || ip == "127.0.0.1" ? "127.0.0.1" : ip)
                let forward = PortForward(kind: .automatic, proto: port.type, hostAddress: publishAddress, hostPort: published,
                                          guestAddress: guestAddress, guestPort: published, container: name)
                // Docker lists a port once per address family; one host listener serves both.
                guard seen.insert(forward.hostKey).inserted else { continue }
                if published == sshPort && forward.proto == "tcp" { continue }
                forwards.append(forward)
            }
        }
        return forwards.sorted { ($0.hostPort, $0.proto) < ($1.hostPort, $1.proto) }
    }

    /// A container's name as the agent's log and `port ls` show it: without the engine's "/",
    /// printable, at most 64 characters (the list is the guest's to write).
    static func containerName(_ raw: String) -> String {
        let name = raw.hasPrefix("/") ? raw.dropFirst() : Substring(raw)
        return String(String.UnicodeScalarView(name.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(64)))
    }

    public static func isAddress(_ text: String) -> Bool {
        LocalSocket.isIPAddress(text)
    }

    /// How the machine's forwards stand: as its running agent reports them, else its config's
    /// manual ones, none forwarded.
    static func statuses(_ config: MachineConfig, files: MachineFiles) -> [ForwardStatus] {
        if AgentProcess(name: config.name, files: files).runningPid() != nil, let statuses = readStatus(files.portsStatus) {
            return statuses
        }
        return config.ports.map {
            ForwardStatus(forward: PortForward(kind: .manual, proto: $0.proto, hostAddress: config.publishAddress, hostPort: $0.hostPort, guestPort: $0.guestPort),
                          state: "not forwarded: \(config.name) is not up")
        }
    }

    /// The status file the agent writes and `port ls` reads.
    public static func readStatus(_ url: URL) -> [ForwardStatus]? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        return try? JSONDecoder().decode([ForwardStatus].self, from: data)
    }

    public static func writeStatus(_ statuses: [ForwardStatus], to url: URL) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let data = try? encoder.encode(statuses) {
            try? AtomicFile.write(data, to: url, mode: 0o600)
        }
    }
}

/// A running container as the engine's `GET /containers/json` lists it: what publishing its
/// ports needs. The list is the guest's to write (fuzzed: MachineFuzz's `containers`).
public struct ListedContainer: Decodable, Sendable, Equatable {
    public struct Port: Decodable, Sendable, Hashable {
        public let ip: String?
        public let publicPort: Int?
        public let type: String

        enum CodingKeys: String, CodingKey {
            case ip = "IP", publicPort = "PublicPort", type = "Type"
        }

        public init(ip: String?, publicPort: Int?, type: String) {
            self.ip = ip
            self.publicPort = publicPort
            self.type = type
        }

        /// The host port a listener can be opened for: published, in range, TCP or UDP. The
        /// list comes from the guest, so anything else is left out.
        public var forwardablePort: Int? {
            guard let publicPort, (1...65535).contains(publicPort), type == "tcp" || type == "udp" else { return nil }
            return publicPort
        }
    }

    public let id: String
    public let names: [String]?
    public let ports: [Port]?
    /// Seconds since 1970: the engine lists the newest first.
    public let created: Int?

    enum CodingKeys: String, CodingKey {
        case id = "Id", names = "Names", ports = "Ports", created = "Created"
    }

    public init(id: String, names: [String]? = nil, ports: [Port]? = nil, created: Int? = nil) {
        self.id = id
        self.names = names
        self.ports = ports
        self.created = created
    }

    /// The containers of a list; nil when it is not one.
    public static func list(_ json: Data) -> [ListedContainer]? {
        try? JSONDecoder().decode([ListedContainer].self, from: json)
    }
}
