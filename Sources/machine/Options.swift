import ArgumentParser
import FoundationEssentials
import HostOS
import MachineCore

/// Flags every machine command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("connect"), help: ArgumentHelp(
        "libvirt URI (default: $MACHINE_LIBVIRT_URI, else qemu:///system for root, qemu:///session for others).",
        valueName: "uri"))
    var uri: String?

    func machines() throws(MachineError) -> Machines {
        try Self.machines(uri: Hypervisor.defaultURI(flag: uri))
    }

    /// The verbs for the machine `name`: on the remote libvirt host it was made on, if it was
    /// (kept in its config), so no command needs --connect again; a --connect that names
    /// another daemon is refused rather than acting on a machine that is not there.
    func machines(for name: String) throws(MachineError) -> Machines {
        try Self.machines(uri: uri(for: name))
    }

    /// The URI of the daemon machine `name` lives on, checked against --connect as
    /// `machines(for:)` does, without connecting.
    func uri(for name: String) throws(MachineError) -> String {
        let paths = Paths()
        let recorded = try? MachineStore(paths: paths).config(name).connect
        if let recorded, let uri, uri != recorded {
            throw MachineError("\(name) lives on \(recorded), not \(uri)", hint: "leave out --connect: its commands go to \(recorded) by themselves", kind: .usage)
        }
        if recorded == nil, let uri, MachineStore(paths: paths).exists(name), try RemoteLibvirt(uri: uri) != nil {
            throw MachineError("\(name) lives on this host, not \(uri)", hint: "leave out --connect, or give another name to make a machine there", kind: .usage)
        }
        return recorded ?? Hypervisor.defaultURI(flag: uri)
    }

    static func machines(uri: String) throws(MachineError) -> Machines {
        let machines = try Machines(paths: Paths(), uri: uri)
        machines.progress = { line in StandardStream.error.write(line + "\n") }
        return machines
    }
}

/// What to do when the machine's config.json is not what machine last wrote (a guest with a
/// read-write share of its folder, or an edit by hand): taken by the commands that boot.
struct ConfigTrustOptions: ParsableArguments {
    @Flag(help: "Take a config.json that was changed outside machine, as it is now.") var acceptConfig = false
    @Flag(help: "Put back the config.json machine last wrote, undoing changes made outside machine.") var restoreConfig = false

    func validate() throws {
        if acceptConfig && restoreConfig { throw ValidationError("--accept-config and --restore-config exclude each other") }
    }

    func apply(to machines: Machines) {
        machines.foreignConfigChange = acceptConfig ? .accept : restoreConfig ? .restore : .refuse
    }
}

/// The machine a command acts on: NAME, or `default`.
struct NameArgument: ParsableArguments {
    @Argument(help: "The machine's name (default: default).")
    var name: String = MachineName.default

    func validate() throws {
        do {
            try MachineName.validate(name)
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// Runs a command body, turning a MachineError into its message, hint and exit status.
func perform(_ body: () throws(MachineError) -> Void) throws {
    do {
        try body()
    } catch {
        throw fail(error)
    }
}

/// The shape of a new machine, taken by `create` and `up` (which uses it only when the
/// machine does not exist yet).
struct MachineShapeOptions: ParsableArguments {
    @Option(help: "Virtual CPUs (default: 2).") var cpus: Int?
    @Option(help: "Memory, e.g. 2G or 2048 (MiB) (default: 1G).") var memory: String?
    @Option(help: "Data disk size (grows as used), e.g. 20G (default: 20G); an existing machine's only grows.") var disk: String?
    @Option(help: "Boot this ISO instead of the built image.") var iso: String?
    @Option(help: "Acceleration: auto (KVM when it really works, else TCG), kvm or tcg (default: auto).") var accel: String?
    @Option(help: ArgumentHelp("Host address that published container ports are forwarded from (default: 127.0.0.1).", valueName: "address"))
    var publishAddress: String?

    @Flag(help: "Also serve the engine on a TLS endpoint on 127.0.0.1 (see `machine env --tls`).") var tls = false
    @Option(help: ArgumentHelp(
        "Whether containers may reach this host: its 127.0.0.1 services through host.docker.internal, its names and its DNS; off cuts them off, and the engine socket and published ports still work (default: on).",
        valueName: "on|off"))
    var hostAccess: String?
    @Option(help: ArgumentHelp(
        "Sleep after this long without a docker client or a connection to a published port, e.g. 30s, 15m, 1h, or off; the next one wakes it (default: 5m).",
        valueName: "time"))
    var idleSleep: String?
    @Option(help: ArgumentHelp(
        "Other platforms whose images and builds run through emulation (docker run --platform linux/arm64): all, none, or some of linux/arm64, linux/arm/v7, linux/riscv64, linux/ppc64le, linux/s390x separated by commas (default: all).",
        valueName: "list"))
    var platforms: String?
    @Option(help: ArgumentHelp(
        "The Debian release of the guest and its engine: \(DebianSuite.choices) (default: \(DebianSuite.default)). `machine upgrade --suite` moves a machine that exists.",
        valueName: "suite"))
    var suite: String?

    var isEmpty: Bool { cpus == nil && memory == nil && disk == nil && iso == nil && accel == nil && !tls && hostAccess == nil && idleSleep == nil && platforms == nil && suite == nil }

    func validate() throws {
        if let cpus, !(1...64).contains(cpus) { throw ValidationError("--cpus must be between 1 and 64") }
        if let accel, !["auto", "kvm", "tcg"].contains(accel) { throw ValidationError("--accel must be auto, kvm or tcg") }
        _ = try Self.onOff(hostAccess, flag: "--host-access")
        _ = try Self.idleSeconds(idleSleep)
        _ = try Self.platforms(platforms)
        _ = try Self.suite(suite)
    }

    /// --suite, if given.
    static func suite(_ text: String?) throws(ValidationError) -> String? {
        try parsed(text, DebianSuite.parse)
    }

    /// --platforms, if given.
    static func platforms(_ text: String?) throws(ValidationError) -> EmulatedPlatforms.Choice? {
        try parsed(text, EmulatedPlatforms.Choice.init)
    }

    /// An option's value read by MachineCore's parser, its error and hint as a usage error.
    private static func parsed<Value>(_ text: String?, _ parse: (String) throws(MachineError) -> Value) throws(ValidationError) -> Value? {
        guard let text else { return nil }
        do {
            return try parse(text)
        } catch {
            throw ValidationError(error.message + (error.hint.map { " (\($0))" } ?? ""))
        }
    }

    /// --idle-sleep in seconds (0: never), if given.
    static func idleSeconds(_ text: String?) throws(ValidationError) -> Int? {
        guard let text else { return nil }
        do {
            return try IdleSleep.parse(text)
        } catch {
            throw ValidationError(error.message)
        }
    }

    /// on/off (also yes/no, true/false) as a Bool; nil when not given.
    static func onOff(_ text: String?, flag: String) throws(ValidationError) -> Bool? {
        guard let text else { return nil }
        switch text.lowercased() {
        case "on", "yes", "true": return true
        case "off", "no", "false": return false
        default: throw ValidationError("\(flag) must be on or off")
        }
    }

    /// --memory in MiB, if given.
    func memoryMiB() throws(MachineError) -> Int? { try Self.mebibytes(memory: memory) }

    static func mebibytes(memory: String?) throws(MachineError) -> Int? {
        guard let memory else { return nil }
        let memoryMiB = try Size.mebibytes(memory)
        guard memoryMiB >= 256 else { throw MachineError("--memory must be at least 256M", kind: .usage) }
        return memoryMiB
    }

    static func gibibytes(disk: String?) throws(MachineError) -> Int? {
        guard let disk else { return nil }
        return max(1, try Size.mebibytes(disk) / 1024)
    }

    /// The shape these options describe; MachineCore fills in the rest of a new machine.
    func shape() throws(MachineError) -> MachineShape {
        MachineShape(cpus: cpus, memoryMiB: try memoryMiB(), diskGiB: try Self.gibibytes(disk: disk),
                     iso: iso, accel: accel, publishAddress: publishAddress, tls: tls,
                     hostAccess: (try? Self.onOff(hostAccess, flag: "--host-access")) ?? nil,
                     idleSleep: (try? Self.idleSeconds(idleSleep)) ?? nil, platforms: (try? Self.platforms(platforms)) ?? nil,
                     suite: (try? Self.suite(suite)) ?? nil)
    }
}

/// dockerd settings kept in the machine config and applied by provisioning.
struct EngineOptions: ParsableArguments {
    @Option(name: .customLong("engine-env"), help: ArgumentHelp("An environment variable for dockerd, e.g. HTTP_PROXY=http://proxy:3128 (repeatable).", valueName: "KEY=VALUE"))
    var environment: [String] = []
    @Option(name: .customLong("registry-mirror"), help: ArgumentHelp("A registry mirror for dockerd (repeatable).", valueName: "url"))
    var registryMirrors: [String] = []
    @Option(name: .customLong("insecure-registry"), help: ArgumentHelp("A registry dockerd may reach without TLS (repeatable).", valueName: "host[:port]"))
    var insecureRegistries: [String] = []

    @Flag(name: .customLong("no-proxy-env"), help: "Do not pass HTTP_PROXY, HTTPS_PROXY and NO_PROXY of your environment to the engine.")
    var noProxyEnv = false

    /// The proxy variables of the environment `machine` runs in, as the engine gets them.
    var environmentProxies: [String] {
        noProxyEnv ? [] : HostTrust.proxyEnvironment(ProcessInfo.processInfo.environment)
    }

    /// Nothing to change: no flag given, and no proxy in the environment to pass on.
    var isEmpty: Bool { environment.isEmpty && registryMirrors.isEmpty && insecureRegistries.isEmpty && environmentProxies.isEmpty }

    /// These options over `base`: each kind given replaces that kind, the others stay; then
    /// the environment's proxies for every key --engine-env did not set (said on `progress`).
    func settings(over base: EngineSettings = .init(), progress: (String) -> Void = { _ in }) throws(MachineError) -> EngineSettings {
        var settings = base
        if !environment.isEmpty { settings.environment = environment }
        if !registryMirrors.isEmpty { settings.registryMirrors = registryMirrors }
        if !insecureRegistries.isEmpty { settings.insecureRegistries = insecureRegistries }
        if !noProxyEnv {
            let (withProxies, taken) = HostTrust.addingProxies(from: ProcessInfo.processInfo.environment, to: settings, keepingKeysOf: environment)
            if !taken.isEmpty {
                progress("the engine goes through the proxy of your environment: \(taken.joined(separator: " ")) (--no-proxy-env leaves it out)")
            }
            settings = withProxies
        }
        return try settings.validated()
    }
}

/// Host folders shared into the machine, taken by `create` and `up`.
struct ShareOptions: ParsableArguments {
    @Option(name: .customLong("mount"), help: ArgumentHelp(
        "Share a host folder at the same path in the machine, or at GUESTPATH; ro makes it read-only; noinotify keeps host edits from raising inotify events for watchers in containers (repeatable; default: your home folder, read-write).",
        valueName: "hostpath[:guestpath][:ro][:noinotify]"))
    var mounts: [String] = []
    @Option(name: .customLong("mount-type"), help: ArgumentHelp(
        "How shares are served: auto (virtiofs when libvirt's system daemon and root can run it, else 9p), virtiofs or 9p. Read-only shares always use 9p, whose server refuses writes on the host (default: auto).",
        valueName: "type"))
    var mountType: String?
    @Flag(name: .customLong("no-mounts"), help: "Share no host folder at all.")
    var noMounts = false

    var isEmpty: Bool { mounts.isEmpty && mountType == nil && !noMounts }

    func validate() throws {
        if let mountType, ShareType(rawValue: mountType) == nil {
            throw ValidationError("--mount-type must be auto, virtiofs or 9p")
        }
        if noMounts && !mounts.isEmpty {
            throw ValidationError("--no-mounts and --mount cannot be given together")
        }
    }

    /// These options over `base`: --mount or --no-mounts replace the list, --mount-type the type.
    func apply(to config: inout MachineConfig, home: String) throws(MachineError) {
        if noMounts {
            config.mounts = []
        } else if !mounts.isEmpty {
            var shares: [Share] = []
            for spec in mounts { shares.append(try Shares.resolve(spec: spec)) }
            config.mounts = shares
        }
        config.mounts = try Shares.checked(config.mounts, machineHome: home)
        if let mountType { config.mountType = ShareType(rawValue: mountType) ?? .auto }
    }
}
