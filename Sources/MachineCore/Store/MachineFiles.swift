import FoundationEssentials

/// Every file in a machine's folder, `$MACHINE_HOME/machines/NAME/`, named in one place.
public struct MachineFiles: Sendable {
    public let folder: URL

    public init(folder: URL) {
        self.folder = folder
    }

    public var config: URL { folder.appendingPathComponent("config.json") }
    /// Held (flock) by every command that changes the machine.
    public var lock: URL { folder.appendingPathComponent("lock") }
    public var privateKey: URL { folder.appendingPathComponent("id_ed25519") }
    public var publicKey: URL { folder.appendingPathComponent("id_ed25519.pub") }
    /// The guest's host key, pinned from its console, in OpenSSH known_hosts form.
    public var knownHosts: URL { folder.appendingPathComponent("known_hosts") }
    public var dataDisk: URL { folder.appendingPathComponent("data.qcow2") }
    public var seed: URL { folder.appendingPathComponent("seed.iso") }
    public var seedFolder: URL { folder.appendingPathComponent("seed") }
    public var consoleLog: URL { folder.appendingPathComponent("console.log") }
    /// What the running boot was made of (image, engine, shape): a saved state is restored
    /// only while a boot now would be made of the same.
    public var bootRecord: URL { folder.appendingPathComponent("boot.json") }
    /// The forwarded engine socket the host's docker CLI talks to (DOCKER_HOST).
    public var dockerSocket: URL { folder.appendingPathComponent("docker.sock") }
    /// Held (flock) by the running host agent for its whole life: one agent per machine.
    public var agentLock: URL { folder.appendingPathComponent("agent.lock") }
    public var agentPid: URL { folder.appendingPathComponent("agent.pid") }
    public var agentLog: URL { folder.appendingPathComponent("agent.log") }
    /// QEMU's end of the guest's virtio-serial port that one of the agent's sshds writes (made
    /// by QEMU while the machine runs, for images that serve it): ssh-port.sock, ports-port.sock.
    public func agentLinkSocket(_ role: SSHPortLink.Role) -> URL { folder.appendingPathComponent("\(role.feature).sock") }
    /// The host port on 127.0.0.1 that this boot forwards to the input of that sshd (written at
    /// boot, for images that serve the split session): ssh-port.input, ports-port.input.
    public func agentLinkInputPort(_ role: SSHPortLink.Role) -> URL { folder.appendingPathComponent("\(role.feature).input") }
    /// The engine's TLS material (`--tls`): the client's ca.pem, cert.pem and key.pem
    /// (DOCKER_CERT_PATH) beside the server's server.pem and server-key.pem, which the guest
    /// gets through the seed and provisioning. The CA's key is not kept.
    public var tls: URL { folder.appendingPathComponent("tls") }
    /// The socket of the virtiofsd that machine starts for share number `index` (session
    /// machines; see UserVirtiofsd). Shorter than docker.sock, whose length is checked.
    public func virtiofsSocket(_ index: Int) -> URL { folder.appendingPathComponent("fs\(index).sock") }
    /// Those virtiofsds' pids and start times, and their words.
    public var virtiofsdPids: URL { folder.appendingPathComponent("virtiofsd.pids") }
    public var virtiofsdLog: URL { folder.appendingPathComponent("virtiofsd.log") }
    /// The port on 127.0.0.1 (UDP and TCP) where this boot's guest sends its DNS queries and
    /// the agent's resolver answers them (written at boot, for images with `host-network`).
    public var hostResolverPort: URL { folder.appendingPathComponent("resolver.port") }
    /// The name of the docker context `up` made for this machine (see DockerContext).
    public var dockerContext: URL { folder.appendingPathComponent("docker-context") }
    /// How full the data disk is, as the running agent last measured it (DataDiskUsage).
    public var dataDiskUsage: URL { folder.appendingPathComponent("disk.json") }
    /// Every forward the running agent has, and how each stands (written by the agent).
    public var portsStatus: URL { folder.appendingPathComponent("ports.json") }
    /// There while the agent has the machine asleep (IdleSleep): since when.
    public var sleeping: URL { folder.appendingPathComponent("sleeping") }
}

/// Machine names: short, lowercase, safe in paths, domain names and hostnames.
public enum MachineName {
    public static let `default` = "default"

    /// The name as the last word of a command a message suggests: nothing for the default
    /// machine (`machine start`), " NAME" for any other (`machine start dev`).
    public static func commandSuffix(_ name: String) -> String {
        name == MachineName.default ? "" : " " + name
    }

    public static func validate(_ name: String) throws(MachineError) {
        let scalars = Array(name.unicodeScalars)
        let ok = !scalars.isEmpty && scalars.count <= 63
            && scalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
            && scalars[0] != "-"
        guard ok else {
            throw MachineError(
                "invalid machine name \"\(name)\"",
                hint: "use 1 to 63 characters: lowercase letters, digits and '-', starting with a letter or digit (e.g. dev-1)",
                kind: .usage)
        }
    }

    /// The libvirt domain of a machine: prefixed, so `virsh list` tells ours apart, and ending
    /// in its home's id, so machines of the same name in two homes (two checkouts, a test run,
    /// a benchmark) never share one.
    public static func domainName(_ name: String, homeID: String) -> String { "machine-\(name)-\(homeID)" }

    /// The domain name machines had before it carried their home's id (adopted at their next start).
    public static func legacyDomainName(_ name: String) -> String { "machine-\(name)" }

    /// The Host name `machine ssh-config` prints for OpenSSH.
    public static func sshAlias(_ name: String) -> String { "machine-\(name)" }
}
