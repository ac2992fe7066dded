import FoundationEssentials

/// What a user chose for a machine at `create`; kept as config.json in its folder.
public struct MachineConfig: Codable, Sendable, Equatable {
    /// dockerd's daemon.json for this machine: its engine settings, and `host-gateway` meaning
    /// the host while containers may reach it.
    public var daemonJSON: Data {
        engine.daemonJSON(hostGateway: hostAccess ? GuestContract.hostAddress : nil)
    }

    public var name: String
    public var cpus: Int
    public var memoryMiB: Int
    public var diskGiB: Int
    /// Boot this ISO as a CD-ROM instead of the cached image's kernel (like boot2docker.iso).
    public var iso: String?
    /// 127.0.0.1 port forwarded to the guest's sshd, chosen free at create.
    public var sshPort: Int
    /// The host port of the engine's TLS endpoint (`--tls`), nil without one.
    public var tlsPort: Int?
    /// auto, kvm or tcg.
    public var accel: String
    public var created: Date
    /// The engine's settings, passed through to dockerd by provisioning.
    public var engine: EngineSettings
    /// The host address published container ports are forwarded from (`--publish-address`).
    public var publishAddress: String
    /// Forwards added with `machine port add`.
    public var ports: [ManualForward]
    /// Host folders shared into the guest (`--mount`), outer folders first.
    public var mounts: [Share]
    /// How they are served (`--mount-type`).
    public var mountType: ShareType
    /// The image and engine the machine went back to when an upgrade's engine did not come
    /// up; it boots those instead of the latest builds until `machine upgrade` succeeds.
    public var held: HeldBuilds?
    /// The libvirt URI of the remote host the machine lives on (qemu+ssh://); nil for one on
    /// this host, whose daemon each command picks as before (--connect, MACHINE_LIBVIRT_URI).
    public var connect: String?
    /// Whether containers may reach the host: its loopback through QEMU's gateway, its names
    /// and its DNS (`--host-access`, on by default as in Docker Desktop).
    public var hostAccess: Bool = true
    /// Seconds without a client (and with a quiet guest) before the machine sleeps
    /// (`--idle-sleep`); 0 never; nil the default, `IdleSleep.defaultSeconds`.
    public var idleSleep: Int?
    /// The platforms whose programs it runs through emulation (`--platforms`): nil for every
    /// one the engine's emulators run, empty for none.
    public var platforms: [String]?
    /// The Debian release of its guest and engine (`--suite`, `DebianSuite`); nil when none
    /// was chosen: it then keeps the one it last ran, and `machine upgrade` moves it to the default.
    public var suite: String?
    /// Started again when the host restarts (`machine autostart`, `AutostartService`).
    public var autostart: Bool = false

    /// The idle time after which the machine sleeps; 0 when it never does.
    public var idleSleepSeconds: Int { idleSleep ?? IdleSleep.defaultSeconds }

    public init(name: String, cpus: Int = 2, memoryMiB: Int = 1024, diskGiB: Int = 20, iso: String? = nil,
                sshPort: Int, accel: String = "auto", created: Date = Date(), engine: EngineSettings = .init(),
                publishAddress: String = "127.0.0.1", ports: [ManualForward] = [], mounts: [Share] = [],
                mountType: ShareType = .auto) {
        self.name = name
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.diskGiB = diskGiB
        self.iso = iso
        self.sshPort = sshPort
        self.accel = accel
        self.created = created
        self.engine = engine
        self.publishAddress = publishAddress
        self.ports = ports
        self.mounts = mounts
        self.mountType = mountType
    }

    // Settings added after a machine was made are read as their defaults.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        cpus = try c.decode(Int.self, forKey: .cpus)
        memoryMiB = try c.decode(Int.self, forKey: .memoryMiB)
        diskGiB = try c.decode(Int.self, forKey: .diskGiB)
        iso = try c.decodeIfPresent(String.self, forKey: .iso)
        sshPort = try c.decode(Int.self, forKey: .sshPort)
        tlsPort = try c.decodeIfPresent(Int.self, forKey: .tlsPort)
        accel = try c.decode(String.self, forKey: .accel)
        created = try c.decode(Date.self, forKey: .created)
        engine = try c.decodeIfPresent(EngineSettings.self, forKey: .engine) ?? .init()
        publishAddress = try c.decodeIfPresent(String.self, forKey: .publishAddress) ?? "127.0.0.1"
        ports = try c.decodeIfPresent([ManualForward].self, forKey: .ports) ?? []
        mounts = try c.decodeIfPresent([Share].self, forKey: .mounts) ?? []
        mountType = try c.decodeIfPresent(ShareType.self, forKey: .mountType) ?? .auto
        held = try c.decodeIfPresent(HeldBuilds.self, forKey: .held)
        connect = try c.decodeIfPresent(String.self, forKey: .connect)
        hostAccess = try c.decodeIfPresent(Bool.self, forKey: .hostAccess) ?? true
        idleSleep = try c.decodeIfPresent(Int.self, forKey: .idleSleep)
        platforms = try c.decodeIfPresent([String].self, forKey: .platforms)
        suite = try c.decodeIfPresent(String.self, forKey: .suite)
        autostart = try c.decodeIfPresent(Bool.self, forKey: .autostart) ?? false
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    public func encoded() -> Data {
        (try? Self.encoder.encode(self)) ?? Data()
    }

    /// What differs from `old`, one phrase per setting in config.json's own words: for a
    /// list, the entries added and removed; for anything else, the old and the new value.
    public func changes(from old: MachineConfig) -> [String] {
        func object(_ config: MachineConfig) -> [String: JSONValue] {
            guard case .object(let fields)? = try? JSONDecoder().decode(JSONValue.self, from: config.encoded()) else { return [:] }
            return fields
        }
        let before = object(old), after = object(self)
        return Set(before.keys).union(after.keys).sorted().compactMap { key in
            let was = before[key]?.text ?? "nothing", now = after[key]?.text ?? "nothing"
            guard was != now else { return nil }
            guard case .array(let wasList)? = before[key], case .array(let nowList)? = after[key] else {
                return "\(key) \(was) -> \(now)"
            }
            let wasItems = wasList.map(\.text), nowItems = nowList.map(\.text)
            let added = nowItems.filter { !wasItems.contains($0) }, removed = wasItems.filter { !nowItems.contains($0) }
            let parts = (added.isEmpty ? [] : ["added " + added.joined(separator: ", ")])
                + (removed.isEmpty ? [] : ["removed " + removed.joined(separator: ", ")])
            return "\(key) " + (parts.isEmpty ? "reordered" : parts.joined(separator: "; "))
        }
    }

    public static func decode(_ data: Data) throws -> MachineConfig {
        try decoder.decode(MachineConfig.self, from: data)
    }

    public static func load(_ url: URL) throws(MachineError) -> MachineConfig {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw MachineError("cannot read \(url.path): \(error.explanation)")
        }
        do {
            return try decoder.decode(MachineConfig.self, from: data)
        } catch {
            throw MachineError("\(url.path) is damaged (\(error))",
                               hint: "fix the file by hand, or remove the machine with `machine rm --force \(url.deletingLastPathComponent().lastPathComponent)`")
        }
    }
}

/// Builds in the cache a machine is held on, by their folder names (cache keys): the image's
/// in `images/`, the engine bundle's in `engine/`. No image for a machine that boots an ISO.
public struct HeldBuilds: Codable, Sendable, Equatable {
    public var image: String?
    public var engine: String

    public init(image: String?, engine: String) {
        self.image = image
        self.engine = engine
    }
}

/// What `--engine-env`, `--registry-mirror` and `--insecure-registry` set.
public struct EngineSettings: Codable, Sendable, Equatable {
    /// KEY=VALUE lines for dockerd's environment (HTTP_PROXY and the like).
    public var environment: [String]
    public var registryMirrors: [String]
    public var insecureRegistries: [String]

    public init(environment: [String] = [], registryMirrors: [String] = [], insecureRegistries: [String] = []) {
        self.environment = environment
        self.registryMirrors = registryMirrors
        self.insecureRegistries = insecureRegistries
    }

    /// Checks what users typed, so a typo is reported at create, not as a dead engine.
    public func validated() throws(MachineError) -> EngineSettings {
        for entry in environment {
            let key = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let keyOK = entry.contains("=") && !key.isEmpty
                && key.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
                && !("0"..."9").contains(key.unicodeScalars.first!)
            guard keyOK, !entry.contains("\n") else {
                throw MachineError("invalid --engine-env \"\(entry)\"", hint: "write KEY=VALUE, e.g. --engine-env HTTP_PROXY=http://proxy:3128", kind: .usage)
            }
        }
        for mirror in registryMirrors {
            guard let url = URL(string: mirror), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                throw MachineError("invalid --registry-mirror \"\(mirror)\"", hint: "give a URL, e.g. --registry-mirror https://mirror.example.com", kind: .usage)
            }
        }
        for registry in insecureRegistries {
            guard !registry.isEmpty, !registry.contains("://"), !registry.contains(where: { $0.isWhitespace }) else {
                throw MachineError("invalid --insecure-registry \"\(registry)\"", hint: "give HOST[:PORT] or a CIDR, e.g. --insecure-registry registry.local:5000", kind: .usage)
            }
        }
        return self
    }

    /// dockerd's daemon.json: overlay2 on the data disk, plus the user's registries, and
    /// `hostGateway` as what `--add-host NAME:host-gateway` (compose's extra_hosts) means:
    /// the host, not the guest's docker0 (nil: Docker's own choice).
    public func daemonJSON(hostGateway: String? = nil) -> Data {
        struct Daemon: Encodable {
            let storageDriver = "overlay2"
            let registryMirrors: [String]
            let insecureRegistries: [String]
            let hostGatewayIP: String?
            enum CodingKeys: String, CodingKey {
                case storageDriver = "storage-driver"
                case registryMirrors = "registry-mirrors"
                case insecureRegistries = "insecure-registries"
                case hostGatewayIP = "host-gateway-ip"
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let daemon = Daemon(registryMirrors: registryMirrors, insecureRegistries: insecureRegistries, hostGatewayIP: hostGateway)
        let json = (try? encoder.encode(daemon)) ?? Data()
        return json + Data("\n".utf8)
    }

    /// The engine.env file the guest's service reads: one KEY=VALUE per line.
    public func environmentFile() -> Data {
        Data(environment.map { $0 + "\n" }.joined().utf8)
    }
}

/// Sizes as users write them: 2048 (MiB), 2G, 512M, 1.5G.
public enum Size {
    public static func mebibytes(_ text: String) throws(MachineError) -> Int {
        let trimmed = text.trimmed().uppercased()
        var number = trimmed
        var factor = 1.0
        for (suffix, value) in [("GIB", 1024.0), ("GB", 1024.0), ("G", 1024.0), ("MIB", 1.0), ("MB", 1.0), ("M", 1.0), ("TIB", 1_048_576.0), ("T", 1_048_576.0)]
        where trimmed.hasSuffix(suffix) {
            number = String(trimmed.dropLast(suffix.count))
            factor = value
            break
        }
        guard let value = Double(number), value > 0, value.isFinite else {
            throw MachineError("invalid size \"\(text)\"", hint: "write a size like 2G, 512M or 2048 (MiB)", kind: .usage)
        }
        return Int((value * factor).rounded())
    }
}

/// Changes that the config itself checks, whoever asks for them.
extension MachineConfig {
    /// Adds a manual forward: not over the machine's own SSH port, nor a host port already
    /// forwarded.
    public mutating func addForward(_ forward: ManualForward) throws(MachineError) {
        guard forward.hostPort != sshPort else {
            throw MachineError("host port \(forward.hostPort) is \(name)'s own SSH port", hint: "pick another host port", kind: .usage)
        }
        let suffix = forward.proto == "tcp" ? "" : "/\(forward.proto)"
        guard !ports.contains(where: { $0.hostPort == forward.hostPort && $0.proto == forward.proto }) else {
            throw MachineError("host port \(forward.hostPort)\(suffix) is already forwarded",
                               hint: "see `machine port ls \(name)`; remove it with `machine port rm \(name) \(forward.hostPort)\(suffix)`")
        }
        ports.append(forward)
    }

    /// Removes the manual forward from `hostPort` of `proto`.
    public mutating func removeForward(hostPort: Int, proto: String) throws(MachineError) {
        guard ports.contains(where: { $0.hostPort == hostPort && $0.proto == proto }) else {
            throw MachineError("no manual forward from host port \(hostPort)\(proto == "tcp" ? "" : "/\(proto)")", hint: "see `machine port ls \(name)`")
        }
        ports.removeAll { $0.hostPort == hostPort && $0.proto == proto }
    }

    /// Sets what is given of how the machine runs; a data disk only grows.
    public mutating func reshape(accel: String?, cpus: Int?, memoryMiB: Int?, diskGiB: Int?) throws(MachineError) {
        if let diskGiB, diskGiB < self.diskGiB {
            throw MachineError("the data disk of \(name) is \(self.diskGiB) GiB and a disk only grows: \(diskGiB) GiB would lose what is on it",
                               hint: "give --disk \(self.diskGiB)G or more; for a smaller disk, `machine rm \(name)` and create it again", kind: .usage)
        }
        if let accel { self.accel = accel }
        if let cpus { self.cpus = cpus }
        if let memoryMiB { self.memoryMiB = memoryMiB }
        if let diskGiB { self.diskGiB = diskGiB }
    }
}
