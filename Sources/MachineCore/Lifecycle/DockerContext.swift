import FoundationEssentials
import HostOS

/// The Docker context `up` makes for a machine, so the plain `docker` command reaches its
/// engine without DOCKER_HOST. Managed with the docker CLI itself (it owns the context store
/// and its format), honouring DOCKER_CONFIG.
///
/// A context belongs to one machine of one home: its endpoint is that machine's socket, and
/// the machine's folder records the context's name. Two homes (a second checkout, a test run)
/// share the docker CLI's one context store, so a home never removes or rewrites a context
/// whose endpoint is another home's socket: the usual single home gets `machine-NAME`, a
/// second home whose machine has the same name gets `machine-NAME-HOMEID`.
public struct DockerContext: Sendable {
    public let machine: String
    let socket: URL
    let record: URL
    let homeID: String
    /// The name recorded when `up` made the context (nil before it did), read when this value
    /// is made: `rm` removes the context after the machine's folder, and the record, are gone.
    public let recordedName: String?

    public init(machine: String, paths: Paths) {
        self.machine = machine
        let files = MachineStore(paths: paths).files(machine)
        socket = files.dockerSocket
        record = files.dockerContext
        homeID = paths.homeID
        recordedName = (try? String(contentsOf: record, encoding: .utf8))?.trimmed().nonEmpty
    }

    public static func dockerHost(socket: URL) -> String { "unix://\(socket.path)" }
    var host: String { Self.dockerHost(socket: socket) }

    /// "machine-NAME": `default` is the docker CLI's own built-in context.
    var plainName: String { "machine-\(machine)" }
    var homeName: String { "machine-\(machine)-\(homeID)" }

    static func dockerCLI() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            let candidate = "\(folder)/docker"
            if HostPath.isExecutable(candidate) { return candidate }
        }
        return nil
    }

    public enum Outcome: Sendable, Equatable {
        case created(String), updated(String), unchanged(String)
        case noDockerCLI

        public var name: String? {
            switch self {
            case .created(let name), .updated(let name), .unchanged(let name): name
            case .noDockerCLI: nil
            }
        }
    }

    /// Creates or updates this machine's context to point at its socket and makes it the
    /// current one.
    public func apply() throws(MachineError) -> Outcome {
        guard let docker = Self.dockerCLI() else { return .noDockerCLI }
        let (name, existing) = chooseName(docker)
        if existing == nil {
            try Subprocess.output(of: [docker, "context", "create", name, "--description", "machine \(machine)", "--docker", "host=\(host)"],
                                 timeout: 30, what: "creating the docker context \(name)")
        } else if existing != host {
            try Subprocess.output(of: [docker, "context", "update", name, "--docker", "host=\(host)"],
                                 timeout: 30, what: "updating the docker context \(name)")
        }
        try? AtomicFile.write(Data((name + "\n").utf8), to: record)
        var changed = existing != host
        if current(docker) != name {
            try Subprocess.output(of: [docker, "context", "use", name], timeout: 30, what: "switching docker to the context \(name)")
            changed = true
        }
        return existing == nil ? .created(name) : changed ? .updated(name) : .unchanged(name)
    }

    /// Brings back this machine's context when it is missing while the docker CLI still has it
    /// as the current one (removed behind machine's back: every `docker` command fails with
    /// "context not found" until it is back). Returns its name when it did.
    public func restoreIfCurrent() -> String? {
        guard let docker = Self.dockerCLI(), let name = recordedName,
              current(docker) == name, endpoint(of: name, docker) == nil else { return nil }
        let made = try? Subprocess.output(of: [docker, "context", "create", name, "--description", "machine \(machine)", "--docker", "host=\(host)"],
                                          timeout: 30, what: "creating the docker context \(name)")
        return made == nil ? nil : name
    }

    /// With `rm` of the machine: removes its context if the context is still this machine's,
    /// and switches the docker CLI back to `default` if it was the current one. Works after the
    /// machine's folder is gone.
    public func remove() {
        guard let docker = Self.dockerCLI() else { return }
        let name = recordedName ?? plainName
        var endpoint = endpoint(of: name, docker)
        if endpoint == host, (try? Subprocess.run([docker, "context", "rm", "--force", name], timeout: 30))?.status == 0 {
            endpoint = nil
        }
        // The docker CLI resets its current context when it removes it, not when it is gone.
        if current(docker) == name && endpoint == nil {
            _ = try? Subprocess.run([docker, "context", "use", "default"], timeout: 30)
        }
    }

    /// The recorded name while it is free or still ours; else `machine-NAME` if that is free,
    /// ours, or left by a machine whose folder is gone; else the name with this home's id. With
    /// the chosen context's endpoint now (nil: no such context).
    func chooseName(_ docker: String) -> (name: String, endpoint: String?) {
        if let recorded = recordedName {
            let found = endpoint(of: recorded, docker)
            if [nil, host].contains(found) { return (recorded, found) }
        }
        let plain = endpoint(of: plainName, docker)
        if plain == nil || plain == host || plain.map(Self.isAbandoned) == true { return (plainName, plain) }
        return (homeName, endpoint(of: homeName, docker))
    }

    /// An endpoint at a unix socket in a machine folder that no longer exists.
    static func isAbandoned(_ endpoint: String) -> Bool {
        guard endpoint.hasPrefix("unix://"), endpoint.hasSuffix("/docker.sock") else { return false }
        let folder = URL(fileURLWithPath: String(endpoint.dropFirst("unix://".count))).deletingLastPathComponent()
        return !FileManager.default.fileExists(atPath: folder.path)
    }

    /// The context's docker endpoint, nil if there is no such context.
    func endpoint(of name: String, _ docker: String) -> String? {
        guard let inspect = try? Subprocess.outcome(of: [docker, "context", "inspect", "--format", "{{.Endpoints.docker.Host}}", name], timeout: 30),
              inspect.status == 0 else { return nil }
        return inspect.output.trimmed()
    }

    /// The docker CLI's current context (DOCKER_CONTEXT, else its config), even when missing.
    func current(_ docker: String) -> String? {
        guard let show = try? Subprocess.outcome(of: [docker, "context", "show"], timeout: 30), show.status == 0 else { return nil }
        return show.output.trimmed()
    }
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}
