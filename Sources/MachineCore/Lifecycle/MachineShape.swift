import FoundationEssentials

/// What a user may say about a new machine's shape (each nil takes the default), and the
/// making of its first config: the defaults, a free loopback port for its SSH forward and
/// the default share of the user's home. `create` and `up` of a new machine both start here.
public struct MachineShape: Sendable {
    public var cpus: Int?
    public var memoryMiB: Int?
    /// The data disk's size (it grows as used).
    public var diskGiB: Int?
    /// An ISO to boot instead of the built image.
    public var iso: String?
    /// auto, kvm or tcg.
    public var accel: String?
    /// The host address published container ports are forwarded from.
    public var publishAddress: String?
    /// Also serve the engine on a TLS endpoint (docker-machine's DOCKER_TLS_VERIFY style).
    public var tls: Bool
    /// Whether containers may reach the host (`--host-access`).
    public var hostAccess: Bool?
    /// Seconds idle before it sleeps, 0 never (`--idle-sleep`).
    public var idleSleep: Int?
    /// The platforms it emulates (`--platforms`); nil to leave as is (all, for a new machine).
    public var platforms: EmulatedPlatforms.Choice?
    /// The Debian release of its guest and engine (`--suite`); nil for the default.
    public var suite: String?

    public init(cpus: Int? = nil, memoryMiB: Int? = nil, diskGiB: Int? = nil, iso: String? = nil,
                accel: String? = nil, publishAddress: String? = nil, tls: Bool = false, hostAccess: Bool? = nil, idleSleep: Int? = nil,
                platforms: EmulatedPlatforms.Choice? = nil, suite: String? = nil) {
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.diskGiB = diskGiB
        self.iso = iso
        self.accel = accel
        self.publishAddress = publishAddress
        self.tls = tls
        self.hostAccess = hostAccess
        self.idleSleep = idleSleep
        self.platforms = platforms
        self.suite = suite
    }

    /// `sharesHome`: the default share of the user's home (not on a remote libvirt host).
    public func newConfig(name: String, engine: EngineSettings, sharesHome: Bool = true) throws(MachineError) -> MachineConfig {
        if let publishAddress { try PortForwards.validateAddress(publishAddress) }
        var config = MachineConfig(name: name, cpus: cpus ?? 2, memoryMiB: memoryMiB ?? 1024, diskGiB: diskGiB ?? 20,
                             iso: iso.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
                             sshPort: try MachineStore.freeLoopbackPort(), accel: accel ?? "auto", engine: engine,
                             publishAddress: publishAddress ?? "127.0.0.1", mounts: sharesHome ? (try? Shares.defaults()) ?? [] : [])
        if tls { config.tlsPort = try MachineStore.freeLoopbackPort() }
        if let hostAccess { config.hostAccess = hostAccess }
        config.idleSleep = idleSleep
        if let platforms { config.platforms = platforms.platforms }
        config.suite = suite
        return config
    }
}
