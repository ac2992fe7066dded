import FoundationEssentials
import HostOS
import SSH

/// How `machine` logs in to a guest: 127.0.0.1 at the machine's forwarded port (the host agent:
/// its split session, `connectAgent`), the host key pinned from the console at first boot, the
/// machine's own key pair, user root.
public struct GuestSSH: Sendable {
    public let name: String
    public let port: Int
    public let files: MachineFiles
    /// For a machine on a remote libvirt host: `port` is on that host's loopback, reached
    /// through the user's OpenSSH to that host (`ssh -W`), as libvirt's qemu+ssh reaches it.
    public let jump: RemoteLibvirt?
    public static let user = "root"
    public static let host = "127.0.0.1"

    public init(name: String, port: Int, files: MachineFiles, jump: RemoteLibvirt? = nil) {
        self.name = name
        self.port = port
        self.files = files
        self.jump = jump
    }

    /// The pinned host key from the machine's known_hosts file.
    public func pinnedHostKey() throws(MachineError) -> HostKey {
        try Self.pinnedHostKey(files, name: name)
    }

    /// The host key a boot of machine `name` pinned in its known_hosts file.
    static func pinnedHostKey(_ files: MachineFiles, name: String) throws(MachineError) -> HostKey {
        guard let text = try? String(contentsOf: files.knownHosts, encoding: .utf8),
              let entry = text.split(separator: "\n").first,
              let key = entry.split(separator: " ", maxSplits: 1).last.flatMap({ HostKey(line: String($0)) })
        else {
            throw MachineError("\(name) has no pinned SSH host key yet",
                               hint: "`machine start \(name)` boots it and pins the key from its console (a QEMU left by a boot that never finished is stopped first)")
        }
        return key
    }

    /// A logged-in session in blocking mode. `timeout` bounds the handshake and login.
    public func connect(timeout: Double = 20) throws(MachineError) -> Session {
        let key = try pinnedHostKey()
        if let jump { return try connect(through: jump, key: key, timeout: timeout) }
        do {
            return try logIn(Session(host: Self.host, port: port, timeout: timeout), key: key)
        } catch {
            throw Self.explain(error, name: name, files: files)
        }
    }

    /// The session over `ssh -W 127.0.0.1:PORT` to the libvirt host; OpenSSH's own words (a
    /// host key it refuses, a login it cannot make) are kept in `jump.log` and told on failure.
    private func connect(through jump: RemoteLibvirt, key: HostKey, timeout: Double) throws(MachineError) -> Session {
        let log = files.folder.appendingPathComponent("jump.log")
        let socket: Int32
        do {
            socket = try CommandSocket.start(jump.jump(toLoopbackPort: port), errors: log.path)
        } catch {
            throw MachineError("cannot run ssh to reach \(name) on \(jump.destination): \(error.description)",
                               hint: "machine reaches a remote libvirt host's machines with OpenSSH's ssh; install openssh-client")
        }
        do {
            return try logIn(Session(socket: socket, peer: "\(name) through \(jump.destination)", timeout: timeout), key: key)
        } catch {
            let said = ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").last.map(String.init)
            if let said, error.kind != .hostKeyMismatch {
                throw MachineError("cannot reach \(name) through \(jump.destination): ssh said: \(said)",
                                   hint: "check that `\(jump.loginCommand)` logs in without a question (a host key it does not know or that changed, a key it does not take)")
            }
            throw Self.explain(error, name: name, files: files)
        }
    }

    /// Whether this boot of the machine serves the agent's split session `link`.
    public func hasLink(_ link: SSHPortLink.Role) -> Bool {
        jump == nil && FileManager.default.fileExists(atPath: files.agentLinkInputPort(link).path)
    }

    /// One of the host agent's sessions: split between a TCP connection into the guest and a
    /// virtio-serial port out while this boot of the machine has them (SSHPortLink), else like
    /// `connect`. `via` says which, for the log.
    public func connectAgent(link: SSHPortLink.Role, timeout: Double) throws(MachineError) -> (session: Session, via: String) {
        let socketPath = files.agentLinkSocket(link).path
        guard jump == nil, FileManager.default.fileExists(atPath: socketPath),
              let text = try? String(contentsOf: files.agentLinkInputPort(link), encoding: .utf8),
              let inputPort = Int(text.trimmed())
        else {
            return (try connect(timeout: timeout), jump.map { "at \(Self.host):\(port) of \($0.destination)" } ?? "at \(Self.host):\(port)")
        }
        let key = try pinnedHostKey()
        do {
            let (receive, send) = try SSHPortLink.open(socketPath: socketPath, inputPort: inputPort, timeout: timeout)
            let session = try Session(socket: receive, sendSocket: send, peer: "\(name)'s SSH port", timeout: timeout)
            return (try logIn(session, key: key), "in at \(Self.host):\(inputPort), out over its virtio-serial port")
        } catch {
            throw Self.explain(error, name: name, files: files)
        }
    }

    private func logIn(_ session: Session, key: HostKey) throws(SSHError) -> Session {
        try session.verifyHostKey(pinned: key)
        try session.authenticate(user: Self.user, privateKeyPath: files.privateKey.path)
        session.timeout = 0
        return session
    }

    /// An SSH failure in the user's terms.
    public static func explain(_ error: SSHError, name: String, files: MachineFiles) -> MachineError {
        switch error.kind {
        case .hostKeyMismatch:
            return MachineError(
                "refusing to talk to \(name): \(error.message)",
                hint: "the key pinned at first boot is in \(files.knownHosts.path); if the machine's data disk was replaced on purpose, remove that file and run `machine restart \(name)`")
        case .system:
            return MachineError("cannot reach \(name) over SSH (\(error))", hint: "is it running? see `machine status \(name)`")
        default:
            return MachineError("SSH to \(name) failed: \(error)", hint: "see `machine logs \(name)`; `machine restart \(name)` may help")
        }
    }
}
