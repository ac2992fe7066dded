import FoundationEssentials
import HostOS
import MachineCore
import SSH
#if canImport(Glibc)
#endif

/// The agent's SSH session: made, lost and made again, and the guest's clock kept through it.
extension Agent {
    /// How the log names this agent's session: the engine's is the machine's, plain.
    var sessionPurpose: String { link == .ports ? " for its forwarded ports" : "" }

    /// Makes the session on a thread of its own (a guest that is stopped makes a connect wait
    /// for its timeouts), and takes it on a later round: meanwhile the loop goes on serving
    /// and refusing clients.
    func connectSession() {
        guard let attempt = connecting else {
            let attempt = SessionAttempt()
            connecting = attempt
            let (guest, link) = (self.guest, self.link)
            Threads.detach { attempt.make(guest: guest, link: link) }
            return
        }
        guard let outcome = attempt.take() else { return }
        connecting = nil
        switch outcome {
        case .success(let made):
            let session = made.session
            reader = made.reader
            // The guest answers within a round trip while its CPUs run: a longer silence is a
            // stopped guest (watchGuestClock).
            session.configureKeepalive(interval: Int(Self.keepaliveInterval), wantReply: true)
            probedSinceHeard = false
            self.session = session
            sessionLostSince = nil
            guestSilence = nil
            reconnectDelay = 0.25
            lastConnectError = ""
            log("\(everConnected ? "reconnected" : "connected") to \(guest.name)\(sessionPurpose) \(made.via) (\(session.algorithms))")
            // A session lost and found again may have spanned a pause of the guest.
            if everConnected && keepsClock { setGuestClock(why: "after a reconnect") }
            // Or a save and restore: the restored QEMU starts from the domain's definition,
            // without the UDP forwards the saved one was given through its monitor. Given
            // again (QEMUForwards.add replaces a forward still there).
            if everConnected && !udpForwards.isEmpty {
                udpForwards.removeAll()
                reconcile()
            }
            everConnected = true
            lastHeard = Date()
            lastReceived = session.bytesReceived
            suspendedAtLastWord = HostClock.suspendedSeconds()
        case .failure(let error):
            if error.description != lastConnectError {
                log("cannot connect to \(guest.name)\(sessionPurpose) yet: \(error.message); retrying")
                lastConnectError = error.description
            }
            nextConnectAttempt = Date().addingTimeInterval(reconnectDelay)
            reconnectDelay = min(reconnectDelay * 2, 2)
        }
    }

    // MARK: Guest clock

    /// A keepalive goes out after this many seconds without a word from the guest, and the
    /// guest answers it. Longer than the guest sshd's own probes of a quiet host come apart:
    /// ClientAliveInterval=1 probes every 1-2 s (it counts whole seconds).
    static let keepaliveInterval: TimeInterval = 3

    /// Asks the guest for a word once it has been silent `keepaliveInterval` seconds: one
    /// keepalive per silence, not one every interval. Each reply stays in libssh2's packet
    /// list for good (`Session.configureKeepalive`), and the guest's sshd speaks by itself
    /// anyway: it probes a quiet host every second (ClientAliveInterval), which libssh2
    /// answers and forgets. Sent every 2 s as before, the replies of a day were 86,400 packets
    /// across the agent's two sessions, walked by every channel read.
    func probeIfSilent(_ session: Session) throws(SSHError) {
        guard !probedSinceHeard, Date().timeIntervalSince(lastHeard) >= Self.keepaliveInterval else { return }
        let sentBefore = session.keepalivesSent
        _ = try session.sendKeepalive()
        // libssh2 keeps its own timer: a keepalive sent under a second ago is not sent again.
        probedSinceHeard = session.keepalivesSent != sentBefore
    }
    /// Silence from the guest longer than this, then traffic again, means its CPUs stopped
    /// (the domain paused, the host asleep) and its clock with them.
    static let stallThreshold: TimeInterval = 5

    /// Sets the guest's clock when it speaks again after a stall: within a second or two of a
    /// resume, where a timer (Lima pushes the time every 10 s) would wait up to its period.
    func watchGuestClock() {
        guard let session, session.bytesReceived != lastReceived else { return }
        let now = Date()
        lifeline?.guestSpoke()
        let silence = now.timeIntervalSince(lastHeard)
        let slept = HostClock.suspendedSeconds() - suspendedAtLastWord
        lastReceived = session.bytesReceived
        probedSinceHeard = false
        suspendedAtLastWord += slept
        defer { lastHeard = now }
        guard keepsClock, silence > Self.stallThreshold else { return }
        // A sleep the agent made: its sleeper sets the clock as it wakes the guest.
        if let sleeper, sleeper.awakeSince(lastHeard) > lastHeard { return }
        // A guest busy enough to keep quiet (under TCG, twenty containers starting) kept its
        // clock: only a pause or the host's sleep stopped it.
        let why = String(cFormat: "after %.0f s without a word from the guest", silence)
        if lifeline == nil || lifeline?.sawPause(since: lastHeard) == true || slept > 1 {
            setGuestClock(why: why + (slept > 1 ? String(cFormat: " (the host slept %.0f s)", slept) : ""))
        } else {
            log("\(why) while its domain ran: busy, its clock kept")
        }
    }

    // MARK: An unreachable guest

    /// Silence this long while libvirt says the domain runs (not paused) means the guest cannot
    /// be reached (its QEMU stopped, its sshd hung): the session is dropped, so its clients get
    /// an error now rather than wait for ever, and a new one is tried.
    static let unreachableAfter: TimeInterval = 20

    func watchSilence() {
        guard session != nil, Date().timeIntervalSince(sleeper?.awakeSince(lastHeard) ?? lastHeard) > Self.unreachableAfter,
              lifeline?.isPaused != true else { return }
        dropSession(SSHError(kind: .library, code: Agent.guestSilentCode, message: "no word from the guest for \(Int(Self.unreachableAfter)) s while its domain runs",
                              operation: "waiting for the guest"))
    }

    /// Over a connection of its own, on a thread: the loop's session is non-blocking and busy.
    func setGuestClock(why: String) {
        guard clockSetting.tryStart() else { return }
        let guest = self.guest
        let flag = clockSetting
        Threads.detach {
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
    func dropSession(_ error: SSHError) {
        log("SSH session to \(guest.name)\(sessionPurpose) lost (\(error)); \(connections.count) connections closed, reconnecting")
        for connection in connections { refuse(connection, why: "the SSH session to the guest broke (\(error.message))") }
        connections.removeAll()
        sessionLostSince = Date()
        guestSilence = error.kind == .library && error.code == Self.guestSilentCode ? error.message : nil
        closing.removeAll()
        forgetSpares()
        reader = nil
        // An open in flight died with the session; the next session starts it afresh.
        waiting.forEach { $0.openingSince = nil }
        session = nil
        nextConnectAttempt = Date()
        reconnectDelay = 0.25
    }
}

/// One attempt at the agent's session, made on its own thread and taken by the loop: the
/// session is used by one thread at a time, first this one, then the loop's.
final class SessionAttempt: @unchecked Sendable {
    typealias Made = (session: Session, reader: Channel, via: String)
    private let lock = Lock()
    private var outcome: Result<Made, MachineError>?

    func make(guest: GuestSSH, link: SSHPortLink.Role) {
        let result = Result { () throws(MachineError) -> Made in
            let (session, via) = try guest.connectAgent(link: link, timeout: 5)
            session.timeout = 5
            let reader: Channel
            do throws(SSHError) {
                reader = try Channel.openReader(session)
            } catch {
                throw GuestSSH.explain(error, name: guest.name, files: guest.files)
            }
            session.timeout = 0
            session.isBlocking = false
            return (session, reader, via)
        }
        lock.lock()
        outcome = result
        lock.unlock()
    }

    /// The outcome once the attempt is over; nil while it runs.
    func take() -> Result<Made, MachineError>? {
        lock.lock()
        defer { lock.unlock() }
        return outcome
    }
}
