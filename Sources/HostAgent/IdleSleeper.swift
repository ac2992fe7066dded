import FoundationEssentials
import HostOS
import MachineCore
import SSH

/// Puts the machine to sleep when nobody has used it for its idle time, and wakes it for the
/// next client (IdleSleep says what sleep is). The agents' loops tell it what they serve: a
/// connection to the engine socket or a published port is use, and the first one that
/// arrives while it sleeps wakes it. The agent's own connections (its watch of the engine's
/// events) are not use. A guest whose CPUs work (a build, a container's job) is not idle.
///
/// It decides on a thread of its own, with a blocking SSH session of its own for the guest's
/// CPU, its page cache and its clock, and a watch of its own for the pause (DomainWatch:
/// through the libvirt helper for a machine on this host).
final class IdleSleeper: @unchecked Sendable {
    let guest: GuestSSH
    let watch: DomainWatch
    let files: MachineFiles
    let log: (String) -> Void
    /// When the guest last said anything to the agent's sessions (AgentLifeline).
    let lastGuestWord: () -> Date

    private let condition = Condition()
    /// Seconds without use before it sleeps; 0 never.
    private var idleAfter: Int
    private var lastUse = Date()
    /// The loops serving a client now.
    private var busyLoops = Set<ObjectIdentifier>()
    private var asleepSince: Date?
    /// When it last woke: a silence of the guest before that was the sleep, not a fault.
    private var wokeAt = Date.distantPast
    /// Why it should wake, once a client came while it sleeps.
    private var wakeReason: String?
    /// No look at the guest's CPU before this (it was busy at the last one).
    private var nextCPULook = Date.distantPast
    private var session: Session?
    private var nextSleepingLook = Date.distantPast

    /// A guest found busy is looked at again after this long. Most often it was only finishing
    /// what the last client started (a container's end, the engine's cleanup), so it sleeps
    /// soon after; a look costs the guest one second of `grep` and `sleep`, and is only made
    /// while no client is connected.
    static let busyRecheck: TimeInterval = 5
    /// How long free page reporting gets to hand the dropped cache to the host.
    static let releaseWait: TimeInterval = 2
    /// How often a sleeping domain is looked at (woken by someone else: `virsh resume`,
    /// `machine ssh`). Through the libvirt helper, only once the guest spoke again: a paused
    /// guest says nothing, a resumed one's sshd speaks within a second or two.
    static let sleepingLook: TimeInterval = 2

    init(guest: GuestSSH, watch: DomainWatch, files: MachineFiles, idleAfter: Int,
         lastGuestWord: @escaping () -> Date = { .distantPast }, log: @escaping (String) -> Void) {
        self.guest = guest
        self.watch = watch
        self.files = files
        self.idleAfter = idleAfter
        self.lastGuestWord = lastGuestWord
        self.log = log
    }

    /// Whether its sleep has the domain paused now.
    var isAsleep: Bool {
        condition.lock()
        defer { condition.unlock() }
        return asleepSince != nil
    }

    // MARK: What the loops tell it

    /// The idle time from the config (at the start, and at each reload).
    func setIdleAfter(_ seconds: Int) {
        condition.lock()
        defer { condition.unlock() }
        if seconds != idleAfter { log("idle sleep: \(seconds > 0 ? "after \(IdleSleep.describe(seconds)) without use" : "off")") }
        idleAfter = seconds
        lastUse = Date()
    }

    /// A loop's round: whether it serves a client now.
    func note(_ loop: AnyObject, busy: Bool) {
        let id = ObjectIdentifier(loop)
        condition.lock()
        defer { condition.unlock() }
        if busy {
            busyLoops.insert(id)
            lastUse = Date()
        } else if busyLoops.remove(id) != nil {
            lastUse = Date()
        }
    }

    /// A client connected to `what`: it is use, and wakes a sleeping machine (on the sleeper's
    /// thread; the client waits for its channel meanwhile).
    func clientArrived(_ what: String) {
        condition.lock()
        defer { condition.unlock() }
        lastUse = Date()
        if asleepSince != nil && wakeReason == nil {
            wakeReason = "a client of \(what)"
            condition.signal()
        }
    }

    /// When a guest that said nothing since `date` may have slept: the moment it woke, or now
    /// while it sleeps (`date` itself when it did not sleep since). Timeouts count from here.
    func awakeSince(_ date: Date) -> Date {
        condition.lock()
        defer { condition.unlock() }
        if asleepSince != nil { return Date() }
        return max(date, wokeAt)
    }

    // MARK: Its thread

    func start() {
        Threads.detach { [self] in
            while true { round() }
        }
    }

    private func round() {
        condition.lock()
        if wakeReason == nil { condition.wait(seconds: 1) }
        let now = Date()
        let asleep = asleepSince
        let reason = wakeReason
        let idle = idleAfter > 0 && busyLoops.isEmpty && now.timeIntervalSince(lastUse) >= Double(idleAfter) && now >= nextCPULook
        let decidedAt = lastUse
        condition.unlock()
        if let asleep {
            if let reason {
                wake(why: reason, asleepSince: asleep)
            } else if now >= nextSleepingLook, !watch.asksThroughHelper || lastGuestWord() > asleep.addingTimeInterval(1) {
                nextSleepingLook = now.addingTimeInterval(Self.sleepingLook)
                if watch.look() == .running { wake(why: "its domain was resumed by someone else", asleepSince: asleep) }
            }
            return
        }
        guard idle else { return }
        // Only a running guest falls asleep (one a user paused is theirs to resume), and only
        // a quiet one. A guest that answered runs: libvirt is asked when it did not.
        guard watch.look(askLibvirt: false) == .running else { return busy() }
        let share = guestCPUShare()
        guard (share ?? 0) <= IdleSleep.busyShareOfOneCPU, share != nil || watch.look() == .running else { return busy() }
        release()
        condition.lock()
        // A client that came meanwhile keeps it awake.
        guard lastUse == decidedAt && busyLoops.isEmpty else {
            condition.unlock()
            return
        }
        asleepSince = Date()
        condition.unlock()
        do throws(MachineError) {
            try watch.pause()
            IdleSleep.mark(files)
            log("asleep after \(IdleSleep.describe(idleAfter)) without a client: its CPUs paused until the next connection")
        } catch {
            log("could not put \(guest.name) to sleep: \(error.message); trying again after the next idle time")
            condition.lock()
            asleepSince = nil
            wakeReason = nil
            lastUse = Date()
            condition.unlock()
        }
    }

    /// Not now: looked at again after `busyRecheck`.
    private func busy() {
        condition.lock()
        nextCPULook = Date().addingTimeInterval(Self.busyRecheck)
        condition.unlock()
    }

    private func wake(why: String, asleepSince: Date) {
        let started = Date()
        do throws(MachineError) {
            try watch.resume()
        } catch {
            // Left for the next round (libvirt restarting, say); the client waits meanwhile.
            log("could not wake \(guest.name) for \(why): \(error.message); trying again")
            Threads.sleep(0.5)
            return
        }
        IdleSleep.clearMark(files)
        condition.lock()
        self.asleepSince = nil
        wakeReason = nil
        wokeAt = Date()
        lastUse = Date()
        condition.unlock()
        log(String(cFormat: "woke after %.0f s asleep (", started.timeIntervalSince(asleepSince)) + why
            + String(cFormat: "; resumed in %.0f ms)", Date().timeIntervalSince(started) * 1000))
        // Its clock stood still while it slept.
        do throws(MachineError) {
            if let offset = try GuestClock.set(over: try connected(), guest: guest) {
                log("set the clock of \(guest.name) after its sleep: it was \(abs(offset)) s \(offset > 0 ? "behind" : "ahead")")
            }
        } catch {
            session = nil
            log("could not set the clock of \(guest.name) after its sleep: \(error.message)")
        }
    }

    // MARK: The guest

    private func connected() throws(MachineError) -> Session {
        if let session { return session }
        let made = try guest.connect(timeout: 10)
        made.timeout = 30
        session = made
        return made
    }

    /// Runs `command` in the guest. The session sits unused between looks, most often for
    /// longer than the guest's sshd waits for an answer to its keepalive probes (60 s; libssh2
    /// answers them only while it reads), so the one kept since the last look is found closed,
    /// and a new one is made once. Taking that failure for "cannot be read" put a working guest
    /// to sleep at the first look of each idle time.
    private func run(_ command: String) throws(MachineError) -> Data {
        if let kept = session {
            if let result = try? kept.run(command) { return result.output }
            session = nil
        }
        let fresh = try connected()
        do {
            return try fresh.run(command).output
        } catch {
            session = nil
            throw GuestSSH.explain(error, name: guest.name, files: guest.files)
        }
    }

    /// The share of one vCPU the guest used over a second; nil when it cannot be read (then
    /// its CPU does not keep it awake: the clients do).
    private func guestCPUShare() -> Double? {
        guard let output = try? run(IdleSleep.cpuCommand) else { return nil }
        return IdleSleep.cpuShare(fromProcStat: String(decoding: output, as: UTF8.self))
    }

    /// Hands the guest's page cache to the host, and gives free page reporting a moment.
    private func release() {
        guard (try? run(IdleSleep.releaseCommand)) != nil else { return }
        Threads.sleep(Self.releaseWait)
    }
}
