import FoundationEssentials
import MachineCore
import HostOS
import SSH

/// Follows the engine's container events and reports the published ports of the running
/// containers: the whole list once at the start (containers already running), then, after
/// each event that can change them, the engine's answer about that one container. On a thread
/// of its own with a blocking SSH session of its own, in through sshd's port as `machine ssh`
/// is: neither the engine socket's session nor the forwarded ports' carries its long-lived
/// `/events` channel (the guest's sshd walks every open channel of a session on each turn of
/// its loop, which under emulation is dear for a port's small round trips), and its questions
/// never queue with the docker clients.
final class EngineWatcher: @unchecked Sendable {
    let guest: GuestSSH
    let report: @Sendable ([ListedContainer]) -> Void
    let log: (String) -> Void

    /// A list of a few thousand containers is a few MiB; a longer answer is not read.
    static let listLimit = 16 << 20
    /// One container's entry is a few KiB, more with many ports published.
    static let containerLimit = 1 << 20
    /// The engine's response heads are a few hundred bytes (UnixHTTP.parseHead bounds them).
    static let readSize = 16384

    init(guest: GuestSSH, report: @escaping @Sendable ([ListedContainer]) -> Void, log: @escaping (String) -> Void) {
        self.guest = guest
        self.report = report
        self.log = log
    }

    func start() {
        Threads.detach { [self] in
            var failures = 0
            var session: Session?
            while true {
                if session == nil { session = connect(after: failures) }
                if let current = session {
                    do throws(SSHError) {
                        if try follow(current) { failures = 0 } else { failures += 1 }
                    } catch {
                        log("the engine's events: the session ended (\(error.message)); making a new one")
                        session = nil
                        failures += 1
                    }
                } else {
                    failures += 1
                }
                // Quick retries for the first 30 s (an engine starting with its guest, or
                // restarting), so published ports follow within a moment; then a calmer pace.
                Threads.sleep(failures < 100 ? 0.3 : 2)
            }
        }
    }

    /// A blocking session; nil while the guest does not answer (said once).
    private func connect(after failures: Int) -> Session? {
        do throws(MachineError) {
            let session = try guest.connect(timeout: 10)
            // A read of the event stream waits as long as no container starts or stops (and
            // through a sleep): its timeout only means "nothing yet" (`follow`); every other
            // call on a guest gone fails after a minute, and the session is made again.
            session.timeout = 60
            // Said each time: this session goes in through sshd's own port, as `machine ssh` does.
            log("the engine's events are followed at \(session.peer), on a session of their own")
            return session
        } catch {
            if failures == 0 { log("cannot reach \(guest.name) to follow the engine's events yet (\(error.message)); retrying") }
            return nil
        }
    }

    /// One subscription: subscribe, list them all, then ask about each container an event
    /// names. Returns whether the engine answered at all; throws when the session broke.
    private func follow(_ session: Session) throws(SSHError) -> Bool {
        // {"type":["container"]}, percent-encoded.
        let filters = "%7B%22type%22%3A%5B%22container%22%5D%7D"
        guard let (events, status, bodyStart) = try open(session, "/events?filters=\(filters)") else { return false }
        defer { _ = events.finish() }
        guard status == 200 else { return false }
        var running = RunningContainers()
        guard try relistAll(session, &running) else { return false }
        report(running.listed)
        var stream = EngineEvents()
        var said = (overlong: 0, unreadable: 0)
        var changes = bodyStart.withUnsafeBytes { stream.feed($0) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readSize, alignment: 1)
        defer { buffer.deallocate() }
        while true {
            if stream.overlong > said.overlong || stream.unreadable > said.unreadable {
                log("the engine's event stream had \(stream.overlong) lines over \(stream.lineLimit) bytes and \(stream.unreadable) that were not events, so far; skipped")
                said = (stream.overlong, stream.unreadable)
            }
            if !changes.isEmpty, try apply(changes, session, to: &running) { report(running.listed) }
            let read: ChannelIO
            do {
                read = try events.read(into: buffer)
            } catch where error.isTimeout {
                changes = EngineEvents.Changes()
                continue
            } catch where error.affectsOnlyTheChannel {
                return true
            }
            guard case .bytes(let count) = read else { return true }
            changes = stream.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    /// Asks the engine about what changed; true when `running` was brought up to date.
    private func apply(_ changes: EngineEvents.Changes, _ session: Session, to running: inout RunningContainers) throws(SSHError) -> Bool {
        if !changes.all {
            var answered = true
            for id in changes.containers {
                // {"id":["<id>"]}, percent-encoded; the ID is hex digits (EngineEvents.isContainerID).
                let target = "/containers/json?filters=%7B%22id%22%3A%5B%22\(id)%22%5D%7D"
                guard let answer = try list(session, target, limit: Self.containerLimit), running.update(id, answer: answer) else {
                    answered = false
                    break
                }
            }
            if answered { return true }
        }
        return try relistAll(session, &running)
    }

    private func relistAll(_ session: Session, _ running: inout RunningContainers) throws(SSHError) -> Bool {
        guard let all = try list(session, "/containers/json", limit: Self.listLimit) else { return false }
        running.replace(with: all)
        return true
    }

    /// GET `target`, a list of running containers and their ports; nil if the engine gave none
    /// (or more than `limit` bytes).
    private func list(_ session: Session, _ target: String, limit: Int) throws(SSHError) -> [ListedContainer]? {
        guard let (channel, status, bodyStart) = try open(session, target) else { return nil }
        defer { _ = channel.finish() }
        guard status == 200 else { return nil }
        let rest: Data
        do {
            rest = try channel.readAll(limit: max(0, limit - bodyStart.count))
        } catch where error.affectsOnlyTheChannel {
            return nil
        }
        return ListedContainer.list(bodyStart + rest)
    }

    /// Sends `GET target` (HTTP/1.0: the engine closes the channel at the end of the body) on
    /// a new channel to the engine's socket; the channel, the status and the body bytes that
    /// came with the head. Nil when the engine refused or answered with no head it could read.
    private func open(_ session: Session, _ target: String) throws(SSHError) -> (Channel, status: Int, bodyStart: Data)? {
        let channel: Channel
        do {
            // Blocking: never nil.
            guard let opened = try Channel.openStreamLocal(session, path: AgentProcess.guestDockerSocket) else { return nil }
            channel = opened
            try channel.writeAll(UnixHTTP.request(target))
        } catch where error.affectsOnlyTheChannel {
            return nil
        }
        let head = try UnixHTTP.readHead { (buffer) throws(SSHError) -> Int in
            do throws(SSHError) {
                guard case .bytes(let count) = try channel.read(into: buffer) else { return 0 }
                return count
            } catch where error.affectsOnlyTheChannel {
                return 0
            }
        }
        guard let (status, rest) = head else {
            _ = channel.finish()
            return nil
        }
        return (channel, status, rest)
    }
}
