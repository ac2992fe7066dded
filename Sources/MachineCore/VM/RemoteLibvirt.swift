import FoundationEssentials

/// A libvirt URI whose daemon runs on another host, reached over SSH
/// (`qemu+ssh://[USER@]HOST[:PORT]/system?keyfile=...&known_hosts=...&no_verify=1`), and the way
/// to a port on that host's loopback: the user's own OpenSSH with the URI's user, port, key and
/// known_hosts, as libvirt itself reaches the daemon. nil for a daemon on this host.
public struct RemoteLibvirt: Equatable, Sendable {
    public let uri: String
    public let host: String
    public let user: String?
    public let port: Int?
    /// The private key to log in with (the URI's `keyfile`), else OpenSSH's own choice.
    public let keyFile: String?
    /// The file that pins the host's key (`known_hosts`), else OpenSSH's own.
    public let knownHosts: String?
    /// `no_verify=1`: the host's key is not checked (libvirt's own meaning).
    public let verifiesHostKey: Bool

    /// Transports whose daemon is reached over SSH: libvirt's `ssh` (OpenSSH) and its libssh
    /// and libssh2 ones, which take the same user, host and key.
    static let sshTransports: Set<String> = ["ssh", "libssh", "libssh2"]

    public init?(uri: String) throws(MachineError) {
        guard let components = URLComponents(string: uri), let scheme = components.scheme else {
            throw MachineError("\(uri) is not a libvirt URI", hint: "write e.g. qemu:///system or qemu+ssh://user@host/system", kind: .usage)
        }
        let parts = scheme.split(separator: "+", maxSplits: 1).map(String.init)
        guard parts.count == 2 else {
            // qemu:///system, qemu:///session, test:///default: this host. A host with no
            // transport is reached by libvirt over TLS, which machine cannot follow.
            guard (components.host ?? "").isEmpty else {
                throw Self.unsupported(uri, transport: "tls")
            }
            return nil
        }
        let transport = parts[1]
        guard Self.sshTransports.contains(transport) else {
            // unix is this host too; tcp and tls reach a daemon machine has no way into.
            if transport == "unix" { return nil }
            throw Self.unsupported(uri, transport: transport)
        }
        guard let host = components.host, !host.isEmpty else {
            throw MachineError("\(uri) names no host", hint: "write qemu+ssh://user@host/system", kind: .usage)
        }
        // The volumes go in a pool of the system daemon's; a session daemon there could
        // neither make it nor let QEMU reach it.
        guard components.path == "/system" else {
            throw MachineError("machine runs machines on a remote libvirt host through its system daemon, not \(components.path.isEmpty ? "no daemon path" : components.path) (\(uri))",
                               hint: "write qemu+ssh://user@\(host)/system; the account needs libvirt's access there (root, or the libvirt group)", kind: .usage)
        }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        self.uri = uri
        self.host = host
        self.user = components.user
        self.port = components.port
        self.keyFile = query["keyfile"].flatMap { $0.isEmpty ? nil : $0 }
        self.knownHosts = query["known_hosts"].flatMap { $0.isEmpty ? nil : $0 }
        self.verifiesHostKey = !["1", "yes", "true"].contains(query["no_verify"] ?? "")
    }

    static func unsupported(_ uri: String, transport: String) -> MachineError {
        MachineError("machine reaches a remote libvirt host only over SSH, not \(transport) (\(uri))",
                     hint: "use qemu+ssh://user@host/system: the machine's engine and ports come back over the same SSH", kind: .usage)
    }

    /// Where errors name it: `user@host:port`.
    public var destination: String {
        (user.map { "\($0)@" } ?? "") + host + (port.map { ":\($0)" } ?? "")
    }

    /// The ssh command a user can try by hand to see whether the host lets them in, as
    /// machine and libvirt reach it (for hints).
    public var loginCommand: String {
        var words = ["ssh"]
        if let port { words += ["-p", String(port)] }
        if let keyFile { words += ["-i", keyFile] }
        if let knownHosts { words += ["-o", "UserKnownHostsFile=\(knownHosts)"] }
        return (words + [(user.map { "\($0)@" } ?? "") + host]).joined(separator: " ")
    }

    /// OpenSSH's command for a connection to `port` on the libvirt host's loopback (its stdin
    /// and stdout are the connection; HostOS.CommandSocket runs it).
    public func jump(toLoopbackPort target: Int) -> [String] {
        var argv = ["ssh", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=15"]
        if let port { argv += ["-p", String(port)] }
        if let user { argv += ["-l", user] }
        if let keyFile { argv += ["-i", keyFile] }
        if let knownHosts { argv += ["-o", "UserKnownHostsFile=\(knownHosts)"] }
        argv += ["-o", "StrictHostKeyChecking=\(verifiesHostKey ? "yes" : "no")"]
        return argv + ["-W", "127.0.0.1:\(target)", "--", host]
    }
}
