import FoundationEssentials
import HostOS
import MachineCore
#if canImport(Glibc)
import Glibc  // fstat(2) of the held lock file, to notice its folder removed under a running agent
#endif

/// Keeps an agent to the one boot of the one machine it was started for. It ends the agent
/// when the machine's folder or its agent.lock goes (deleted, or made anew by another machine
/// at the same path, whose files the agent must then leave alone), when the domain goes or is
/// defined anew (another UUID), or when the domain has stopped. Meanwhile it tells the loop
/// whether a silent guest is paused (wait for it) or runs (unreachable, or busy).
final class AgentLifeline: @unchecked Sendable {
    let lockPath: String
    let lockFD: Int32
    let watch: DomainWatch?
    let log: (String) -> Void
    private let lock = Lock()
    private var lastPaused: Date?
    private var replaced = false
    /// When a session last received anything from the guest (its sshd speaks every second or
    /// two by itself): a watch through the helper asks libvirt only after a silence.
    private var lastWord = Date()
    /// Whether the agent's own sleep has the domain paused (`follow(sleeper:)`).
    private var agentSleeps: () -> Bool = { false }

    /// How often the lock file and the domain are looked at.
    static let lockInterval: TimeInterval = 2
    static let domainInterval: TimeInterval = 3
    /// How long a look that found the domain paused counts: until the next look has answered.
    /// Looks come every `domainInterval`, at a tick of `lockInterval` (every 4 s, then), and
    /// one through the libvirt helper takes a moment more. Shorter, a guest paused for longer
    /// than `AgentSession.unreachableAfter` lost its sessions in the gaps.
    static let pauseSeenFor: TimeInterval = domainInterval + lockInterval + 1
    /// Silence from the guest after which libvirt is asked whether it is paused, when it is
    /// asked only then (a watch through the helper).
    static let quietAfter: TimeInterval = 2
    /// Looks in a row that must find the domain stopped: a libvirt that is restoring or saving
    /// it reports it stopped for a moment, and between a managed save and its restore no QEMU
    /// of it runs (the restore's QEMU is then followed: `DomainQEMU`).
    static let stoppedLooks = 2

    /// What else wants doing now and then while the machine runs (keeping its logs bounded).
    let chores: @Sendable () -> Void
    static let choresInterval: TimeInterval = 30

    init(lockPath: String, lockFD: Int32, watch: DomainWatch?, log: @escaping (String) -> Void, chores: @escaping @Sendable () -> Void = {}) {
        self.lockPath = lockPath
        self.lockFD = lockFD
        self.watch = watch
        self.log = log
        self.chores = chores
    }

    /// False once the machine's folder is not the one this agent started in: its files
    /// (sockets, pid, ports.json) may be another machine's now.
    var ownsFolder: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !replaced
    }

    /// Whether libvirt reported the domain paused at or after `date`.
    func sawPause(since date: Date) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return lastPaused.map { $0 >= date.addingTimeInterval(-Self.pauseSeenFor) } ?? false
    }

    /// Whether the last look found it paused (its silence is no fault).
    var isPaused: Bool { sawPause(since: Date()) }

    /// Takes the sleeper's word for a pause it made.
    func follow(sleeper: IdleSleeper) {
        lock.lock()
        agentSleeps = { sleeper.isAsleep }
        lock.unlock()
    }

    /// A session received something from the guest.
    func guestSpoke() {
        lock.lock()
        lastWord = Date()
        lock.unlock()
    }

    /// When the guest last said anything to either session.
    var lastGuestWord: Date {
        lock.lock()
        defer { lock.unlock() }
        return lastWord
    }

    func start() {
        Threads.detach { [self] in
            var stopped = 0
            var nextDomainLook = Date()
            var nextChores = Date()
            while SignalFlags.terminationRequested == 0 {
                if let why = lockGone() {
                    lock.lock(); replaced = true; lock.unlock()
                    return end("\(why); this agent's machine is gone")
                }
                if let watch, Date() >= nextDomainLook {
                    nextDomainLook = Date().addingTimeInterval(Self.domainInterval)
                    // A guest that speaks runs; one silent a while may be paused by someone
                    // else. One the agent's sleep paused is known to be, without asking.
                    lock.lock()
                    let sleeps = agentSleeps
                    lock.unlock()
                    let asleep = sleeps()
                    let quiet = Date().timeIntervalSince(lastGuestWord) >= Self.quietAfter
                    var sighting = watch.look(askLibvirt: quiet && !asleep)
                    if asleep, sighting == .running { sighting = .paused }
                    switch sighting {
                    case .gone(let why):
                        return end(why)
                    case .stopped:
                        stopped += 1
                        if stopped >= Self.stoppedLooks {
                            return end(watch.asksThroughHelper ? "its domain has stopped (its QEMU ended)" : "its domain has stopped")
                        }
                    case .paused:
                        stopped = 0
                        lock.lock(); lastPaused = Date(); lock.unlock()
                    case .running, .unknown:
                        stopped = 0
                    }
                }
                if Date() >= nextChores {
                    nextChores = Date().addingTimeInterval(Self.choresInterval)
                    chores()
                }
                Threads.sleep(Self.lockInterval)
            }
        }
    }

    /// Why the lock this agent holds is not its machine's any more, if it is not.
    private func lockGone() -> String? {
        var held = stat()
        var now = stat()
        guard fstat(lockFD, &held) == 0 else { return nil }
        guard stat(lockPath, &now) == 0 else { return "\(lockPath) was removed" }
        return held.st_ino == now.st_ino && held.st_dev == now.st_dev ? nil : "\(lockPath) was made anew"
    }

    private func end(_ why: String) {
        log("exiting: \(why)")
        SignalFlags.requestTermination()
    }
}
