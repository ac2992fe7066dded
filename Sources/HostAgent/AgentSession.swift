import Foundation
import MachineCore
import SSH
#if canImport(Glibc)
import Glibc
#endif

/// The agent's SSH session: made, lost and made again, and the guest's clock kept through it.
extension Agent {
    /// How the log names this agent's session: the engine's is the machine's, plain.
    var sessionPurpose: String { link == .ports ? " for its forwarded ports" : "" }

    func connectSession() {
        do throws(MachineError) {
            let (session, via) = try guest.connectAgent(link: link, timeout: 5)
            session.timeout = 5
            do {
                reader = try Channel.openReader(session)
            } catch {
                throw GuestSSH.explain(error, name: guest.name, files: guest.files)
            }
            session.timeout = 0
            session.isBlocking = false
            // The guest answers within a round trip while its CPUs run: a longer silence is a
            // stopped guest (watchGuestClock).
            session.configureKeepalive(interval: Int(Self.keepaliveInterval))
            self.session = session
            reconnectDelay = 0.25
            lastConnectError = ""
            log("\(everConnected ? "reconnected" : "connected") to \(guest.name)\(sessionPurpose) \(via) (\(session.algorithms))")
            // A session lost and found again may have spanned a pause of the guest.
            if everConnected && keepsClock { setGuestClock(why: "after a reconnect") }
            everConnected = true
            lastHeard = Date()
            lastReceived = session.bytesReceived
        } catch {
            if error.description != lastConnectError {
                log("cannot connect to \(guest.name)\(sessionPurpose) yet: \(error.message); retrying")
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
    func watchGuestClock() {
        guard keepsClock, let session, session.bytesReceived != lastReceived else { return }
        let now = Date()
        let silence = now.timeIntervalSince(lastHeard)
        lastReceived = session.bytesReceived
        lastHeard = now
        if silence > Self.stallThreshold { setGuestClock(why: String(format: "after %.0f s without a word from the guest", silence)) }
    }

    /// Over a connection of its own, on a thread: the loop's session is non-blocking and busy.
    func setGuestClock(why: String) {
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
    func dropSession(_ error: SSHError) {
        log("SSH session to \(guest.name)\(sessionPurpose) lost (\(error)); \(connections.count) connections closed, reconnecting")
        connections.removeAll()
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
