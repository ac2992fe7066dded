import Foundation
import SSH

/// How `machine` logs in to a guest: 127.0.0.1 at the machine's forwarded port (the host agent:
/// its split session, `connectAgent`), the host key pinned from the console at first boot, the
/// machine's own key pair, user root.
public struct GuestSSH: Sendable {
    public let name: String
    public let port: Int
    public let files: MachineFiles
    public static let user = "root"
    public static let host = "127.0.0.1"

    public init(name: String, port: Int, files: MachineFiles) {
        self.name = name
        self.port = port
        self.files = files
    }

    /// The pinned host key from the machine's known_hosts file.
    public func pinnedHostKey() throws(MachineError) -> HostKey {
        guard let text = try? String(contentsOf: files.knownHosts, encoding: .utf8),
              let entry = text.split(separator: "\n").first,
              let key = entry.split(separator: " ", maxSplits: 1).last.flatMap({ HostKey(line: String($0)) })
        else {
            throw MachineError("\(name) has no pinned SSH host key yet",
                               hint: "start it with `machine start \(name)`: the key is pinned from its console at boot")
        }
        return key
    }

    /// A logged-in session in blocking mode. `timeout` bounds the handshake and login.
    public func connect(timeout: Double = 20) throws(MachineError) -> Session {
        let key = try pinnedHostKey()
        do {
            return try logIn(Session(host: Self.host, port: port, timeout: timeout), key: key)
        } catch {
            throw Self.explain(error, name: name, files: files)
        }
    }

    /// The host agent's session: split between a TCP connection into the guest and its
    /// virtio-serial port out while this boot of the machine has them (SSHPortLink), else like
    /// `connect`. `via` says which, for the log.
    public func connectAgent(timeout: Double) throws(MachineError) -> (session: Session, via: String) {
        let socketPath = files.guestSSHSocket.path
        guard FileManager.default.fileExists(atPath: socketPath),
              let text = try? String(contentsOf: files.guestSSHInputPort, encoding: .utf8),
              let inputPort = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            return (try connect(timeout: timeout), "at \(Self.host):\(port)")
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
