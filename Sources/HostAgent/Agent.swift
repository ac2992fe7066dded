import FoundationEssentials
import MachineCore
import HostOS
import SSH
#if canImport(Glibc)
import Glibc  // the agent's loop: poll(2) on its listeners, the session and the wake pipe
#endif

/// The host agent: one process per running machine, holding one SSH session to the guest and
/// serving host sockets through it. Each accepted connection becomes one channel
/// (`direct-streamlocal@openssh.com` for the engine socket), copied both ways with half-close
/// carried both ways. Single-threaded: libssh2 sessions must not be shared between threads,
/// so everything runs in one poll loop with the session in non-blocking mode. When the
/// session drops, connections waiting for a channel are kept while it is made again. The
/// engine's socket keeps one channel open ahead of its next client (see `Listener.spare`).
/// Its state and loop are here; the rest by concern: AgentSession (the session, the guest's
/// clock), AgentPoll (what the loop waits on), AgentRelay (channels and bytes), AgentForwarding
/// (published and manual ports), AgentMailbox (what other threads hand the loop).
public final class Agent {
    /// Where a listener's connections go in the guest.
    public enum Target: Sendable, CustomStringConvertible {
        case unixSocket(String)
        case tcp(host: String, port: Int)

        public var description: String {
            switch self {
            case .unixSocket(let path): return path
            case .tcp(let host, let port): return "\(host):\(port)"
            }
        }
    }

    final class Listener {
        private(set) var fd: Int32
        let name: String
        let target: Target
        /// Keep one channel open ahead of the next client (`spare`), so a connection does
        /// not wait a round trip through the emulated guest's sshd for its channel. Only for
        /// targets whose protocol has the client speak first (the engine's HTTP API): an
        /// idle connection opened early is then indistinguishable from a slow client.
        let keepsSpare: Bool
        var spare: Channel?
        /// False after the guest refused a spare (engine not up yet): no new one is tried
        /// until a client's own channel opens.
        var spareWanted = true
        init(fd: Int32, name: String, target: Target, keepsSpare: Bool = false) {
            self.fd = fd
            self.name = name
            self.target = target
            self.keepsSpare = keepsSpare
        }
        /// Stops listening now, even while connections it accepted go on.
        func close() {
            if fd >= 0 { Glibc.close(fd) }
            fd = -1
        }
        deinit { close() }
    }

    /// Bytes read from one side, not yet written to the other.
    final class Buffer {
        static let capacity = 128 * 1024
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
        var start = 0
        var end = 0
        var isEmpty: Bool { start == end }
        var pending: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[start..<end]) }
        func consumed(_ count: Int) {
            start += count
            if start == end { start = 0; end = 0 }
        }
        deinit { storage.deallocate() }
    }

    final class Connection {
        let client: Int32
        let listener: Listener
        let accepted = Date()
        /// When this connection's channel open went to the guest (nil until then, and again
        /// after the session drops): its timeout counts from here, not from `accepted`, so
        /// neither a queue of opens ahead of it nor a reconnect counts against the guest.
        var openingSince: Date?
        var channel: Channel?
        let toGuest = Buffer()
        let toClient = Buffer()
        var clientSentEOF = false
        var eofSentToGuest = false
        var guestSentEOF = false
        var clientShutDown = false
        var finished = false
        /// Whether the client got any byte from the guest (else it may still get an error).
        var answered = false
        /// Whether a recv(2) of the client may find bytes: after poll() reported it readable,
        /// or when it was not polled for input; false once a read came back short or empty.
        var clientMayHaveInput = true

        init(client: Int32, listener: Listener) {
            self.client = client
            self.listener = listener
        }
        deinit { Glibc.close(client) }

        var done: Bool { eofSentToGuest && guestSentEOF && toClient.isEmpty && clientShutDown }
        /// Whether the loop polls the client for input: only with room to take it in.
        var wantsInput: Bool { toGuest.isEmpty && !clientSentEOF }
    }

    let guest: GuestSSH
    /// Which of the guest's split sessions this agent holds (the engine's, or the forwarded
    /// ports' of their own); where the guest serves none, a plain one to sshd's port.
    let link: SSHPortLink.Role
    /// Whether it sets the guest's clock after a stall: one agent of a machine does.
    let keepsClock: Bool
    let log: (String) -> Void
    /// What libvirt says of the domain, and whether the machine's folder is still this
    /// agent's (nil: not watched, in tests).
    let lifeline: AgentLifeline?
    /// Puts the machine to sleep when no client uses it, and wakes it for the next (nil: never).
    var sleeper: IdleSleeper?
    var listeners: [Listener] = []
    var session: Session?
    /// Read in a round where no other channel is (Channel.openReader).
    var reader: Channel?
    var connections: [Connection] = []
    /// Accepted, waiting for a channel (libssh2 opens one channel at a time).
    var waiting: [Connection] = []
    /// Closed by us, channel close/free still in progress (non-blocking).
    var closing: [Channel] = []
    /// The listener whose spare channel is being opened, and since when. libssh2 has one
    /// channel open in progress per session, so nothing else opens until it is done.
    var spareOpening: (listener: Listener, since: Date)?
    /// The session being made (on a thread of its own), if one is.
    var connecting: SessionAttempt?
    var nextConnectAttempt = Date.distantPast
    var reconnectDelay = 0.25
    var lastConnectError = ""
    var everConnected = false
    var refusing = false

    // Port forwarding (enabled by `enablePortForwarding`).
    var forwarding: (statusFile: URL, loadConfig: () -> MachineConfig?)?
    var forwardListeners: [String: (listener: Listener, forward: PortForward)] = [:]
    /// QEMU's own UDP forwards of this machine (nil: on a remote libvirt host, none), and the
    /// ones open now by host key.
    var qemuForwards: QEMUForwards?
    var udpForwards: [String: PortForward] = [:]
    var manualForwards: [PortForward] = []
    var publishAddress = "127.0.0.1"
    var sshPort = 0
    var statuses: [ForwardStatus] = []
    var lastReconcile = Date.distantPast
    var loggedFailures = Set<String>()
    /// Filled by the watcher thread, emptied by the loop.
    var mailbox: Mailbox?
    /// Called on the watcher's thread each time the engine's running containers changed.
    var containersChanged: (@Sendable () -> Void)?
    var automaticForwards: [PortForward] = []
    var wakePipe: [Int32] = [-1, -1]
    var lastHeard = Date()
    /// Whether a keepalive went out since the guest last spoke (`probeIfSilent`).
    var probedSinceHeard = false
    var lastReceived: UInt64 = 0
    /// HostClock.suspendedSeconds() when the guest last spoke.
    var suspendedAtLastWord = 0.0
    /// Since when no session has served (from the start until the first one).
    var sessionLostSince: Date? = Date()
    /// Why the last session ended, when it ended because the guest stopped answering (not
    /// because its connection closed): clients are refused at once until a new session is made.
    var guestSilence: String?
    /// The code of the SSHErrors that say the guest stopped answering.
    static let guestSilentCode: Int32 = -9
    let clockSetting = OneAtATime()

    /// A connection waits this long for the session to come back before it is refused; once
    /// there was none for this long, new ones are refused at once (until there is one again).
    static let waitForSession: TimeInterval = 20
    /// A channel open that takes longer means the session is dead (host slept, guest froze).
    static let channelOpenTimeout: TimeInterval = 10

    init(guest: GuestSSH, link: SSHPortLink.Role = .engine, keepsClock: Bool = true, lifeline: AgentLifeline?, log: @escaping (String) -> Void) {
        self.guest = guest
        self.link = link
        self.keepsClock = keepsClock
        self.lifeline = lifeline
        self.log = log
    }

    public convenience init(guest: GuestSSH, link: SSHPortLink.Role = .engine, keepsClock: Bool = true, log: @escaping (String) -> Void) {
        self.init(guest: guest, link: link, keepsClock: keepsClock, lifeline: nil, log: log)
    }

    /// Serves `path` on the host, forwarding each connection to `target` in the guest.
    public func listen(unixSocket path: String, name: String, target: Target) throws(MachineError) {
        let fd = try LocalSocket.listen(unixSocket: path)
        listeners.append(Listener(fd: fd, name: name, target: target, keepsSpare: true))
        log("serving \(path) -> guest \(target)")
    }

    /// Forwards the published ports of running containers (followed through the engine's
    /// events: EngineWatcher) and the config's manual forwards; writes how each stands to
    /// `statusFile`. UDP ports are forwarded by QEMU through `udp`, if given.
    public func enablePortForwarding(statusFile: URL, udp: QEMUForwards? = nil, loadConfig: @escaping () -> MachineConfig?) {
        forwarding = (statusFile, loadConfig)
        qemuForwards = udp
    }

    /// SIGTERM, SIGINT and SIGHUP stop the loop (it sees them within a second and shuts
    /// down cleanly); SIGUSR1 (`machine port add/rm`) reloads the manual forwards. Called once,
    /// first thing in the agent process, so an early signal cannot kill it.
    public static func installSignalHandlers() {
        SignalFlags.catchTermination()
        SignalFlags.catchReload()
    }

    /// Runs until SIGTERM or SIGINT (or until `stop` says so: tests).
    public func run(until stop: () -> Bool = { SignalFlags.terminationRequested != 0 }) {
        if forwarding != nil { startForwarding() }
        var busy = true
        while !stop() {
            if session == nil && Date() >= nextConnectAttempt { connectSession() }
            if forwarding != nil { updateForwards() }
            var fds = pollSet()
            // After a round that moved data or read from the session's socket, look again at
            // once: libssh2 may hold data for channels that it already read from the socket.
            let timeout: Int32 = busy ? 0 : (session == nil || !waiting.isEmpty ? 100 : 1000)
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0 && errno != EINTR {
                log("poll failed: \(String(cString: strerror(errno)))")
                usleep(100_000)
            }
            // accept() only where poll saw a client: the kernel builds and frees a socket for
            // every accept() that finds none, which was a quarter of the agent's CPU in bulk copies.
            // Readable, or failed or hung up: a read will say which.
            let input = Int16(POLLIN) | Int16(POLLERR) | Int16(POLLHUP) | Int16(POLLNVAL)
            let readable = Set(fds.filter { $0.revents & input != 0 }.map(\.fd))
            noteInput(readable, timedOut: ready == 0 && timeout > 0)
            busy = acceptClients(on: readable)
            busy = serveRound() || busy
            // Every connection is a client's, which is use of the machine.
            sleeper?.note(self, busy: !connections.isEmpty || !waiting.isEmpty)
            watchGuestClock()
            watchSilence()
        }
        log("stopping: \(connections.count) open connections closed")
        connections.removeAll()
        waiting.removeAll()
        closing.removeAll()
        forgetSpares()
        reader = nil
        forwardListeners.values.forEach { $0.listener.close() }
        forwardListeners.removeAll()
        // A machine made anew at the same path has files of the same names, and a domain of
        // the same name: they are its own.
        let ownsFolder = lifeline?.ownsFolder ?? true
        if ownsFolder {
            for forward in udpForwards.values {
                try? qemuForwards?.remove(hostAddress: forward.hostAddress, hostPort: forward.hostPort)
            }
            if let forwarding { try? FileManager.default.removeItem(at: forwarding.statusFile) }
        }
        udpForwards.removeAll()
        for listener in listeners {
            let path = socketPath(of: listener)
            if !path.isEmpty && ownsFolder { unlink(path) }
            listener.close()
        }
        listeners.removeAll()
        session = nil
    }
}
