import FoundationEssentials
import HostOS
import SSH
#if canImport(Glibc)
import Glibc  // poll(2) and recv(2) with MSG_PEEK on the forwarded socket, to tell a closed peer from a quiet one
#endif

/// The host end of the agent's split SSH session (iso/rootfs/usr/lib/machine/ssh-port-run): the
/// guest's sshd reads a TCP connection we make to the machine's input port (forwarded by QEMU)
/// and writes the virtio-serial port whose host end QEMU serves on a unix socket.
///
/// A port is one byte stream for the guest's whole boot, so it may still hold bytes of an earlier
/// session (an agent killed mid-transfer, an sshd that died). Each session therefore starts with a
/// handshake: we send "machine-sync NONCE\n" on the connection, the guest answers
/// "machine-ready NONCE\n" on the port, we skip everything before that, and what follows is
/// sshd's SSH stream.
public enum SSHPortLink {
    /// The agent's split sessions, each a virtio-serial port, a guest TCP port and an sshd of
    /// its own: the engine's socket (with its spare channel and the agent's `/events` stream)
    /// in one, the forwarded container ports in the other. sshd walks every channel of its
    /// session at each turn of its loop, which under TCG put the engine's long-lived channels
    /// on every small round trip of a forwarded port (docs/benchmarks.md, issue 23).
    public enum Role: String, Sendable, CaseIterable {
        case engine, ports

        /// The image feature that says the guest serves it (iso/features.txt), also the name
        /// of its files in the machine's folder (MachineFiles.agentLinkSocket).
        public var feature: String { self == .engine ? "ssh-port" : "ports-port" }
        /// The virtio-serial port's name in the guest (/sys/class/virtio-ports/*/name).
        public var portName: String { self == .engine ? GuestContract.sshPortName : GuestContract.portsPortName }
        /// The guest's TCP port whose connection its sshd reads.
        public var guestPort: Int { self == .engine ? GuestContract.agentInputGuestPort : GuestContract.portsInputGuestPort }
    }

    /// The two sockets of a session: the port to read, positioned at the start of sshd's SSH
    /// stream, and the connection to write. Both are closed on failure.
    public static func open(socketPath: String, inputPort: Int, timeout: Double) throws(SSHError) -> (receive: Int32, send: Int32) {
        // The port first: the guest answers on it as soon as the connection's line arrives.
        guard let receive = LocalSocket.connectUnix(socketPath, timeout: timeout) else {
            throw SSHError(kind: .system, code: errno, message: String(cString: strerror(errno)), operation: "connecting to \(socketPath)")
        }
        let send: Int32
        do {
            send = try Session.connectTCP(host: GuestSSH.host, port: inputPort, timeout: timeout)
        } catch {
            close(receive)
            throw error
        }
        do {
            try handshake(send: send, receive: receive, nonce: randomNonce(), deadline: Date().addingTimeInterval(timeout))
            return (receive, send)
        } catch {
            close(receive)
            close(send)
            throw error
        }
    }

    /// The handshake on connected sockets (public for tests; `send` may be `receive`).
    public static func handshake(send: Int32, receive: Int32, nonce: String, deadline: Date) throws(SSHError) {
        let sync = Array("\(GuestContract.syncLine) \(nonce)\n".utf8)
        guard sync.withUnsafeBytes({ Glibc.send(send, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == sync.count else {
            throw failure(errno, "sending the handshake to the guest's SSH input")
        }
        let ready = Array("\(GuestContract.readyLine) \(nonce)".utf8)
        var line: [UInt8] = []
        var peeked = [UInt8](repeating: 0, count: 4096)
        while true {
            let left = deadline.timeIntervalSinceNow
            // The connection says nothing before sshd does: anything on it now is its end. QEMU
            // accepts for the guest and closes when nobody listens there (another session, or
            // the guest still starting).
            var pollers = [pollfd(fd: receive, events: Int16(POLLIN), revents: 0)]
            if send != receive { pollers.append(pollfd(fd: send, events: Int16(POLLIN), revents: 0)) }
            guard left > 0, poll(&pollers, nfds_t(pollers.count), Int32(left * 1000) + 1) > 0 else {
                if left > 0 && errno == EINTR { continue }
                throw SSHError(kind: .system, code: ETIMEDOUT, message: "the guest did not answer on its SSH port",
                               operation: "waiting for the guest's SSH port (is ssh-port-run running in the guest?)")
            }
            if pollers.count > 1 && pollers[1].revents != 0 {
                throw SSHError(kind: .system, code: ECONNRESET, message: "the guest closed the connection",
                               operation: "starting a session on the guest's SSH input (another session may still hold it)")
            }
            guard pollers[0].revents != 0 else { continue }
            // Look before taking: nothing after the answer's newline may be read here, it is
            // the start of sshd's stream and belongs to libssh2.
            let count = recv(receive, &peeked, peeked.count, Int32(MSG_PEEK))
            if count == 0 {
                throw SSHError(kind: .system, code: ECONNRESET, message: "the port closed during the handshake",
                               operation: "waiting for the guest's SSH port")
            }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw failure(errno, "reading the guest's SSH port")
            }
            let take = peeked[0..<count].firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? count
            guard recv(receive, &peeked, take, 0) == take else { throw failure(errno, "reading the guest's SSH port") }
            // Only a line's end can be the answer: bytes of an earlier session may run into it
            // without a newline between.
            line = Array((line + peeked[0..<take]).suffix(ready.count + 1))
            guard line.last == UInt8(ascii: "\n") else { continue }
            if line.count == ready.count + 1 && line.dropLast().elementsEqual(ready) { return }
            line = []
        }
    }

    static func randomNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(cFormat: "%08x", UInt32.random(in: .min ... .max, using: &generator)) }.joined()
    }

    private static func failure(_ code: Int32, _ operation: String) -> SSHError {
        SSHError(kind: .system, code: code, message: String(cString: strerror(code)), operation: operation)
    }
}
