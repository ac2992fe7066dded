import Foundation
import SSH
#if canImport(Glibc)
import Glibc
#endif

/// Set by SIGTERM/SIGINT; the agent's loop sees it within a second and shuts down cleanly.
nonisolated(unsafe) private var terminationRequested: sig_atomic_t = 0
/// Set by SIGUSR1 (`machine port add/rm`): read the manual forwards from the config again.
nonisolated(unsafe) private var reloadRequested: sig_atomic_t = 0

/// The host agent: one process per running machine, holding one SSH session to the guest and
/// serving host sockets through it. Each accepted connection becomes one channel
/// (`direct-streamlocal@openssh.com` for the engine socket), copied both ways with half-close
/// carried both ways. Single-threaded: libssh2 sessions must not be shared between threads,
/// so everything runs in one poll loop with the session in non-blocking mode. When the
/// session drops, connections waiting for a channel are kept while it is made again. The
/// engine's socket keeps one channel open ahead of its next client (see `Listener.spare`).
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
        var channel: Channel?
        let toGuest = Buffer()
        let toClient = Buffer()
        var clientSentEOF = false
        var eofSentToGuest = false
        var guestSentEOF = false
        var clientShutDown = false
        var finished = false

        init(client: Int32, listener: Listener) {
            self.client = client
            self.listener = listener
        }
        deinit { Glibc.close(client) }

        var done: Bool { eofSentToGuest && guestSentEOF && toClient.isEmpty && clientShutDown }
    }

    let guest: GuestSSH
    let log: (String) -> Void
    private var listeners: [Listener] = []
    private var session: Session?
    private var connections: [Connection] = []
    /// Accepted, waiting for a channel (libssh2 opens one channel at a time).
    private var waiting: [Connection] = []
    /// Closed by us, channel close/free still in progress (non-blocking).
    private var closing: [Channel] = []
    /// The listener whose spare channel is being opened, and since when. libssh2 has one
    /// channel open in progress per session, so nothing else opens until it is done.
    private var spareOpening: (listener: Listener, since: Date)?
    private var nextConnectAttempt = Date.distantPast
    private var reconnectDelay = 0.25
    private var lastConnectError = ""
    private var everConnected = false
    private var refusing = false

    // Port forwarding (enabled by `enablePortForwarding`).
    private var forwarding: (statusFile: URL, loadConfig: () -> MachineConfig?)?
    private var forwardListeners: [String: (listener: Listener, forward: PortForward)] = [:]
    private var manualForwards: [PortForward] = []
    private var publishAddress = "127.0.0.1"
    private var sshPort = 0
    private var statuses: [ForwardStatus] = []
    private var lastReconcile = Date.distantPast
    private var loggedFailures = Set<String>()
    /// Filled by the watcher thread, emptied by the loop.
    private var mailbox: Mailbox?
    private var automaticForwards: [PortForward] = []
    private var wakePipe: [Int32] = [-1, -1]
    private var lastHeard = Date()
    private var lastReceived: UInt64 = 0
    private let clockSetting = OneAtATime()

    /// A connection waits this long for the session to come back before it is dropped.
    static let waitForSession: TimeInterval = 60
    /// A channel open that takes longer means the session is dead (host slept, guest froze).
    static let channelOpenTimeout: TimeInterval = 10

    public init(guest: GuestSSH, log: @escaping (String) -> Void) {
        self.guest = guest
        self.log = log
    }

    /// Serves `path` on the host, forwarding each connection to `target` in the guest.
    public func listen(unixSocket path: String, name: String, target: Target) throws(MachineError) {
        let fd = try LocalSocket.listenUnix(path)
        listeners.append(Listener(fd: fd, name: name, target: target, keepsSpare: true))
        log("serving \(path) -> guest \(target)")
    }

    /// Forwards the published ports of running containers (followed through the engine's
    /// events) and the config's manual forwards; writes how each stands to `statusFile`.
    public func enablePortForwarding(statusFile: URL, loadConfig: @escaping () -> MachineConfig?) {
        forwarding = (statusFile, loadConfig)
    }

    /// SIGTERM, SIGINT and SIGHUP stop the loop; SIGUSR1 reloads the manual forwards. Set up
    /// first thing in the agent process, so an early signal cannot kill it.
    public static func installSignalHandlers() {
        signal(SIGPIPE, SIG_IGN)
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal(sig) { _ in terminationRequested = 1 }
        }
        signal(SIGUSR1) { _ in reloadRequested = 1 }
    }

    /// Runs until SIGTERM or SIGINT.
    public func run() {
        Self.installSignalHandlers()
        if forwarding != nil { startForwarding() }
        var busy = true
        while terminationRequested == 0 {
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
            let readable = Set(fds.filter { $0.revents & Int16(POLLIN) != 0 }.map(\.fd))
            busy = acceptClients(on: readable)
            busy = serveRound() || busy
            watchGuestClock()
        }
        log("stopping: \(connections.count) open connections closed")
        connections.removeAll()
        waiting.removeAll()
        closing.removeAll()
        forgetSpares()
        forwardListeners.values.forEach { $0.listener.close() }
        forwardListeners.removeAll()
        if let forwarding { try? FileManager.default.removeItem(at: forwarding.statusFile) }
        for listener in listeners {
            let path = socketPath(of: listener)
            if !path.isEmpty { unlink(path) }
        }
        listeners.removeAll()
        session = nil
    }

    // MARK: Session

    private func connectSession() {
        do {
            let (session, via) = try guest.connectAgent(timeout: 5)
            session.isBlocking = false
            // The guest answers within a round trip while its CPUs run: a longer silence is a
            // stopped guest (watchGuestClock).
            session.configureKeepalive(interval: Int(Self.keepaliveInterval))
            self.session = session
            reconnectDelay = 0.25
            lastConnectError = ""
            log("\(everConnected ? "reconnected" : "connected") to \(guest.name) \(via) (\(session.algorithms))")
            // A session lost and found again may have spanned a pause of the guest.
            if everConnected { setGuestClock(why: "after a reconnect") }
            everConnected = true
            lastHeard = Date()
            lastReceived = session.bytesReceived
        } catch {
            if error.description != lastConnectError {
                log("cannot connect to \(guest.name) yet: \(error.message); retrying")
                lastConnectError = error.description
            }
            nextConnectAttempt = Date().addingTimeInterval(reconnectDelay)
            reconnectDelay = min(reconnectDelay * 2, 2)
        }
    }

    // MARK: Guest clock

    /// Keepalives go out after this many seconds without traffic, and the guest answers each.
    static let keepaliveInterval: TimeInterval = 2
    /// Silence from the guest longer than this, then traffic again, means its CPUs stopped
    /// (the domain paused, the host asleep) and its clock with them.
    static let stallThreshold: TimeInterval = 5

    /// Sets the guest's clock when it speaks again after a stall: within a second or two of a
    /// resume, where a timer (Lima pushes the time every 10 s) would wait up to its period.
    private func watchGuestClock() {
        guard let session else { return }
        let now = Date()
        guard session.bytesReceived != lastReceived else { return }
        let silence = now.timeIntervalSince(lastHeard)
        lastReceived = session.bytesReceived
        lastHeard = now
        if silence > Self.stallThreshold { setGuestClock(why: String(format: "after %.0f s without a word from the guest", silence)) }
    }

    /// Over a connection of its own, on a thread: the loop's session is non-blocking and busy.
    private func setGuestClock(why: String) {
        guard clockSetting.tryStart() else { return }
        let guest = self.guest
        let flag = clockSetting
        Thread.detachNewThread {
            defer { flag.finish() }
            do throws(MachineError) {
                let session = try guest.connect(timeout: 10)
                if let offset = try GuestClock.set(over: session, guest: guest) {
                    AgentProcess.log("set the clock of \(guest.name) \(why): it was \(abs(offset)) s \(offset > 0 ? "behind" : "ahead")")
                }
            } catch {
                AgentProcess.log("could not set the clock of \(guest.name) \(why): \(error.message)")
            }
        }
    }

    /// The session broke: every connection that had a channel is closed (its stream cannot be
    /// resumed), waiting ones stay for the next session.
    private func dropSession(_ error: SSHError) {
        log("SSH session to \(guest.name) lost (\(error)); \(connections.count) connections closed, reconnecting")
        connections.removeAll()
        closing.removeAll()
        forgetSpares()
        session = nil
        nextConnectAttempt = Date()
        reconnectDelay = 0.25
    }

    // MARK: Poll

    private var allListeners: [Listener] { listeners + forwardListeners.values.map(\.listener) }

    private func pollSet() -> [pollfd] {
        var fds: [pollfd] = allListeners.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        if wakePipe[0] >= 0 { fds.append(pollfd(fd: wakePipe[0], events: Int16(POLLIN), revents: 0)) }
        if let session {
            let blocked = session.blockedDirections
            var events = Int16(POLLIN)
            if blocked.outbound { events |= Int16(POLLOUT) }
            fds.append(pollfd(fd: session.socketDescriptor, events: events, revents: 0))
        }
        for connection in connections where connection.channel != nil {
            var events: Int16 = 0
            if connection.toGuest.isEmpty && !connection.clientSentEOF { events |= Int16(POLLIN) }
            if !connection.toClient.isEmpty { events |= Int16(POLLOUT) }
            if events != 0 { fds.append(pollfd(fd: connection.client, events: events, revents: 0)) }
        }
        return fds
    }

    private func acceptClients(on readable: Set<Int32>) -> Bool {
        var accepted = false
        for listener in allListeners where listener.fd >= 0 && readable.contains(listener.fd) {
            while true {
                let fd = accept(listener.fd, nil, nil)
                if fd < 0 { break }
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                if case .tcp = listener.target {
                    // Small request/response traffic must not wait for Nagle (OpenSSH does the same).
                    var one: Int32 = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                }
                waiting.append(Connection(client: fd, listener: listener))
                accepted = true
            }
        }
        return accepted
    }

    // MARK: Serving

    /// One pass over everything; true if anything moved.
    private func serveRound() -> Bool {
        var progress = false
        // Connections nobody can serve in time are dropped: the client sees the socket close.
        waiting.removeAll { connection in
            if Date().timeIntervalSince(connection.accepted) > Self.waitForSession {
                log("dropped a connection to \(connection.listener.name): no SSH session to \(guest.name) for \(Int(Self.waitForSession)) s")
                return true
            }
            return false
        }
        guard let session else { return false }
        let receivedBefore = session.bytesReceived
        do {
            progress = try openChannels(session) || progress
            for connection in connections {
                progress = try pump(connection) || progress
            }
            connections.removeAll { connection in
                guard connection.finished || connection.done else { return false }
                if let channel = connection.channel, !channel.finish() { closing.append(channel) }
                return true
            }
            closing.removeAll { $0.finish() }
            // After the clients' data went out, so a spare's open never delays a request.
            try checkSpares()
            try openSpare(session)
            _ = try session.sendKeepalive()
        } catch {
            dropSession(error)
            return true
        }
        // What a call read may be queued for a channel pumped earlier in this round.
        if session.bytesReceived != receivedBefore { progress = true }
        return progress
    }

    private func openChannels(_ session: Session) throws(SSHError) -> Bool {
        var progress = false
        if spareOpening != nil {
            try openSpare(session)
            if spareOpening != nil { return false }
        }
        while let connection = waiting.first {
            if let spare = connection.listener.spare {
                connection.listener.spare = nil
                connection.channel = spare
                connections.append(connection)
                waiting.removeFirst()
                progress = true
                continue
            }
            let channel: Channel?
            do {
                channel = try openChannel(session, to: connection.listener.target)
            } catch where error.affectsOnlyTheChannel {
                // Logged once per run of refusals: while the engine starts, clients retry a lot.
                if !refusing {
                    log("the guest refused a connection to \(connection.listener.target): \(error.message) (not logged again until one works)")
                    refusing = true
                }
                waiting.removeFirst()
                progress = true
                continue
            }
            guard let channel else {
                if Date().timeIntervalSince(connection.accepted) > Self.channelOpenTimeout {
                    throw SSHError(kind: .library, code: -9, message: "no answer to a channel open for \(Int(Self.channelOpenTimeout)) s",
                                   operation: "opening a channel to \(connection.listener.target)")
                }
                return progress
            }
            connection.channel = channel
            refusing = false
            connection.listener.spareWanted = true
            connections.append(connection)
            waiting.removeFirst()
            progress = true
        }
        return progress
    }

    /// Nil while the open is in progress (call again with the same target).
    private func openChannel(_ session: Session, to target: Target) throws(SSHError) -> Channel? {
        switch target {
        case .unixSocket(let path): return try Channel.openStreamLocal(session, path: path)
        case .tcp(let host, let port): return try Channel.openDirectTCPIP(session, host: host, port: port)
        }
    }

    /// Starts or goes on opening a spare channel for the first listener that wants one, when
    /// no client waits for a channel.
    private func openSpare(_ session: Session) throws(SSHError) {
        if spareOpening == nil {
            guard waiting.isEmpty,
                  let listener = listeners.first(where: { $0.keepsSpare && $0.spareWanted && $0.spare == nil && $0.fd >= 0 })
            else { return }
            spareOpening = (listener, Date())
        }
        guard let (listener, since) = spareOpening else { return }
        let channel: Channel?
        do {
            channel = try openChannel(session, to: listener.target)
        } catch where error.affectsOnlyTheChannel {
            spareOpening = nil
            listener.spareWanted = false
            return
        }
        guard let channel else {
            if Date().timeIntervalSince(since) > Self.channelOpenTimeout {
                throw SSHError(kind: .library, code: -9, message: "no answer to a channel open for \(Int(Self.channelOpenTimeout)) s",
                               operation: "opening a channel to \(listener.target)")
            }
            return
        }
        spareOpening = nil
        listener.spare = channel
    }

    /// A spare the guest closed (the engine restarted) or that carries data nobody asked
    /// for is never handed to a client: it is closed, and the next one opened.
    private func checkSpares() throws(SSHError) {
        var scratch: UInt8 = 0
        for listener in listeners {
            guard let spare = listener.spare else { continue }
            // Reading also lets libssh2 take in whatever the session received (keepalive
            // replies, the spare's own EOF) while no connection is open.
            let read = withUnsafeMutableBytes(of: &scratch) { byte in
                Result { () throws(SSHError) -> ChannelIO in try spare.read(into: byte) }
            }
            let result: ChannelIO
            do {
                result = try read.get()
            } catch where error.affectsOnlyTheChannel {
                result = .eof
            }
            guard result != .wouldBlock else { continue }
            listener.spare = nil
            if !spare.finish() { closing.append(spare) }
        }
    }

    private func forgetSpares() {
        spareOpening = nil
        for listener in listeners { listener.spare = nil }
    }

    /// Moves what can move on one connection without blocking. A failure of the client
    /// socket or of this channel ends the connection; a session failure is thrown.
    private func pump(_ connection: Connection) throws(SSHError) -> Bool {
        guard let channel = connection.channel, !connection.finished else { return false }
        var progress = false
        do {
            // Client -> guest.
            while true {
                let buffer = connection.toGuest
                if buffer.isEmpty && !connection.clientSentEOF {
                    let count = recv(connection.client, buffer.storage.baseAddress, Buffer.capacity, 0)
                    if count > 0 {
                        buffer.end = count
                    } else if count == 0 {
                        connection.clientSentEOF = true
                    } else if errno == EAGAIN || errno == EINTR {
                        break
                    } else {
                        connection.finished = true
                        return true
                    }
                }
                if !buffer.isEmpty {
                    guard case .bytes(let count) = try channel.write(buffer.pending) else { break }
                    buffer.consumed(count)
                    progress = true
                    continue
                }
                if connection.clientSentEOF && !connection.eofSentToGuest {
                    guard try channel.sendEOF() else { break }
                    connection.eofSentToGuest = true
                    progress = true
                }
                break
            }
            // Guest -> client.
            while true {
                let buffer = connection.toClient
                if buffer.isEmpty && !connection.guestSentEOF {
                    switch try channel.read(into: buffer.storage) {
                    case .bytes(let count): buffer.end = count
                    case .eof: connection.guestSentEOF = true
                    case .wouldBlock: break
                    }
                }
                if !buffer.isEmpty {
                    let count = send(connection.client, buffer.pending.baseAddress, buffer.pending.count, Int32(MSG_NOSIGNAL))
                    if count > 0 {
                        buffer.consumed(count)
                        progress = true
                        continue
                    }
                    if count < 0 && errno != EAGAIN && errno != EINTR {
                        connection.finished = true  // the client went away
                        return true
                    }
                    break
                }
                if connection.guestSentEOF && !connection.clientShutDown {
                    shutdown(connection.client, Int32(SHUT_WR))
                    connection.clientShutDown = true
                    progress = true
                }
                break
            }
        } catch where error.affectsOnlyTheChannel {
            connection.finished = true
            return true
        }
        return progress
    }

    // MARK: Port forwarding

    private func startForwarding() {
        guard pipe(&wakePipe) == 0 else { return }
        _ = fcntl(wakePipe[0], F_SETFL, O_NONBLOCK)
        _ = fcntl(wakePipe[1], F_SETFL, O_NONBLOCK)
        reloadConfig()
        guard let socket = listeners.first(where: { if case .unixSocket = $0.target { return true } else { return false } }) else { return }
        let path = socketPath(of: socket)
        let mailbox = Mailbox(wakeFD: wakePipe[1])
        self.mailbox = mailbox
        EngineWatcher(socketPath: path, report: { mailbox.put($0) }).start()
    }

    private func reloadConfig() {
        guard let config = forwarding?.loadConfig() else { return }
        publishAddress = config.publishAddress
        sshPort = config.sshPort
        manualForwards = config.ports.map {
            PortForward(kind: .manual, hostAddress: config.publishAddress, hostPort: $0.hostPort, guestPort: $0.guestPort)
        }
    }

    /// Takes what the watcher reported and what SIGUSR1 asked for; reconciles the listeners
    /// when anything changed, and every few seconds while some forward could not open.
    private func updateForwards() {
        var changed = false
        if reloadRequested != 0 {
            reloadRequested = 0
            reloadConfig()
            log("manual forwards reloaded: \(manualForwards.map { "\($0.hostPort):\($0.guestPort)" }.joined(separator: ", "))")
            changed = true
        }
        if wakePipe[0] >= 0 {
            var drain = [UInt8](repeating: 0, count: 64)
            while read(wakePipe[0], &drain, drain.count) > 0 {}
        }
        if let containers = mailbox?.take() {
            automaticForwards = PortForwards.automatic(containersJSON: containers, publishAddress: publishAddress, sshPort: sshPort)
            changed = true
        }
        let retry = statuses.contains { $0.state.hasPrefix("error") } && Date().timeIntervalSince(lastReconcile) > 3
        if changed || retry { reconcile() }
    }

    private func reconcile() {
        lastReconcile = Date()
        var wanted: [String: PortForward] = [:]
        var order: [PortForward] = []
        var next: [ForwardStatus] = []
        // Manual forwards first: they win a host port both ask for.
        for forward in manualForwards + automaticForwards {
            if forward.proto != "tcp" {
                next.append(ForwardStatus(forward: forward, state: "not forwarded: SSH carries TCP only"))
                continue
            }
            if forward.hostPort == sshPort {
                next.append(ForwardStatus(forward: forward, state: "not forwarded: \(sshPort) is the machine's own SSH port"))
                continue
            }
            if let other = wanted[forward.hostKey] {
                let owner = other.container.map { "container \($0)" } ?? "a manual forward"
                next.append(ForwardStatus(forward: forward, state: "error: host port \(forward.hostPort) is taken by \(owner)"))
                continue
            }
            wanted[forward.hostKey] = forward
            order.append(forward)
        }
        for (key, entry) in forwardListeners where wanted[key] != entry.forward {
            entry.listener.close()
            forwardListeners[key] = nil
            log("forward \(entry.forward.hostAddress):\(entry.forward.hostPort) closed")
        }
        for forward in order {
            if forwardListeners[forward.hostKey] != nil {
                next.append(ForwardStatus(forward: forward, state: "forwarding"))
                continue
            }
            switch LocalSocket.listenTCP(address: forward.hostAddress, port: forward.hostPort) {
            case .success(let fd):
                let listener = Listener(fd: fd, name: "\(forward.hostAddress):\(forward.hostPort)",
                                        target: .tcp(host: forward.guestAddress, port: forward.guestPort))
                forwardListeners[forward.hostKey] = (listener, forward)
                loggedFailures.remove(forward.hostKey)
                log("forward \(forward.hostAddress):\(forward.hostPort) -> guest \(forward.guestAddress):\(forward.guestPort)"
                    + (forward.container.map { " (container \($0))" } ?? " (manual)"))
                next.append(ForwardStatus(forward: forward, state: "forwarding"))
            case .failure(let error):
                var reason = String(cString: strerror(error.code.rawValue))
                if error.code == .EADDRINUSE {
                    reason = "\(forward.hostAddress):\(forward.hostPort) is already in use"
                        + (LocalSocket.holder(ofTCPPort: forward.hostPort).map { " by \($0)" } ?? " on the host")
                }
                if loggedFailures.insert(forward.hostKey).inserted {
                    log("cannot forward \(forward.hostAddress):\(forward.hostPort): \(reason)")
                }
                next.append(ForwardStatus(forward: forward, state: "error: \(reason)"))
            }
        }
        next.sort { ($0.forward.hostPort, $0.forward.proto) < ($1.forward.hostPort, $1.forward.proto) }
        if next != statuses, let forwarding {
            PortForwards.writeStatus(next, to: forwarding.statusFile)
        }
        statuses = next
    }

    private func socketPath(of listener: Listener) -> String {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener.fd, $0, &length) }
        }
        return withUnsafeBytes(of: &address.sun_path) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}

/// The latest container list from the watcher thread, and the pipe that wakes the loop.
final class Mailbox: @unchecked Sendable {
    private let lock = NSLock()
    private var latest: Data?
    private let wakeFD: Int32

    init(wakeFD: Int32) {
        self.wakeFD = wakeFD
    }

    func put(_ data: Data) {
        lock.lock()
        latest = data
        lock.unlock()
        var byte: UInt8 = 1
        _ = write(wakeFD, &byte, 1)
    }

    func take() -> Data? {
        lock.lock()
        defer { lock.unlock() }
        let data = latest
        latest = nil
        return data
    }
}

/// A job that runs on one thread at a time; a second start while it runs is refused.
final class OneAtATime: @unchecked Sendable {
    private let lock = NSLock()
    private var running = false

    func tryStart() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if running { return false }
        running = true
        return true
    }

    func finish() {
        lock.lock()
        running = false
        lock.unlock()
    }
}
