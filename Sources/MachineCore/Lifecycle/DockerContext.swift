import Foundation
import HostOS

/// The Docker context `up` makes for a machine, so the plain `docker` command reaches its
/// engine without DOCKER_HOST. Managed with the docker CLI itself (it owns the context store
/// and its format), honouring DOCKER_CONFIG.
public struct DockerContext: Sendable {
    public let machine: String

    public init(machine: String) {
        self.machine = machine
    }

    /// "machine-NAME": `default` is the docker CLI's own built-in context.
    public var name: String { "machine-\(machine)" }

    public static func dockerHost(socket: URL) -> String { "unix://\(socket.path)" }

    static func dockerCLI() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            let candidate = "\(folder)/docker"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    public enum Outcome: Sendable {
        case created, updated, unchanged
        case noDockerCLI
    }

    /// Creates or updates the context to point at `socket` and makes it the current one.
    public func apply(socket: URL) throws(MachineError) -> Outcome {
        guard let docker = Self.dockerCLI() else { return .noDockerCLI }
        let host = Self.dockerHost(socket: socket)
        let inspect = try Subprocess.outcome(of: [docker, "context", "inspect", "--format", "{{.Endpoints.docker.Host}}", name], timeout: 30)
        var outcome = Outcome.unchanged
        if inspect.status != 0 {
            try Subprocess.output(of: [docker, "context", "create", name, "--description", "machine \(machine)", "--docker", "host=\(host)"],
                                 timeout: 30, what: "creating the docker context \(name)")
            outcome = .created
        } else if inspect.output.trimmingCharacters(in: .whitespacesAndNewlines) != host {
            try Subprocess.output(of: [docker, "context", "update", name, "--docker", "host=\(host)"],
                                 timeout: 30, what: "updating the docker context \(name)")
            outcome = .updated
        }
        let current = try Subprocess.outcome(of: [docker, "context", "show"], timeout: 30)
        if current.output.trimmingCharacters(in: .whitespacesAndNewlines) != name {
            try Subprocess.output(of: [docker, "context", "use", name], timeout: 30, what: "switching docker to the context \(name)")
            if outcome == .unchanged { outcome = .updated }
        }
        return outcome
    }

    /// Removes the context (with `rm` of the machine); the docker CLI falls back to its default.
    public func remove() {
        guard let docker = Self.dockerCLI() else { return }
        if (try? Subprocess.run([docker, "context", "inspect", name], timeout: 30))?.status == 0 {
            _ = try? Subprocess.run([docker, "context", "rm", "--force", name], timeout: 30)
        }
    }
}
