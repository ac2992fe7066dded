import FoundationEssentials
import HostOS
import MachineCore
import SSH
#if canImport(Glibc)
import Glibc  // setpriority(2): walking 15,000 folders at start-up must not slow the user's programs
#endif

/// Host edits to the machine's read-write shares, raised in the guest as the inotify events a
/// local edit raises, so watchers in containers (nodemon, webpack, `inotifywait`) hear them.
/// The host side watches the shares' trees with inotify; each change becomes a line that the
/// guest's `share-events` copies into /proc/machine-notify, where machine_notify.ko raises the
/// event (docs/internals.md). It runs on a thread with an SSH session of its own, blocking, so
/// the agent's loop and its non-blocking session are left alone.
/// (Unchecked Sendable: after `start`, only its own thread touches it.)
final class ShareEventForwarder: @unchecked Sendable {
    let guest: GuestSSH
    let lines: ShareEventLines
    let machineHome: String
    let log: (String) -> Void

    init(guest: GuestSSH, shares: [Share], machineHome: String, log: @escaping (String) -> Void) {
        self.guest = guest
        self.lines = ShareEventLines(shares: shares)
        self.machineHome = machineHome
        self.log = log
    }

    /// The guest program that takes the lines, and its exit status when the image has no
    /// machine_notify.ko (an image from before it).
    static let guestCommand = GuestContract.shareEventsCommand
    static let notSupported = GuestContract.shareEventsUnsupportedStatus

    func start() {
        guard !lines.roots.isEmpty else { return }
        Threads.detach { [self] in run() }
    }

    private func run() {
        // Watching a large home walks every folder in it (15,000 take seconds): at the lowest
        // priority, so the walk never slows the guest's boot or the engine's forwarding. (On Linux
        // a nice value belongs to the thread: who 0 is this thread only.)
        setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
        let home = machineHome
        let tree: InotifyTree
        do {
            // machine's own folder (keys, disks, the agent's log) is hidden from the guest.
            tree = try InotifyTree(skip: { $0 == home || $0.hasPrefix(home + "/") })
        } catch {
            log("host edits will raise no events in \(guest.name): \(error)")
            return
        }
        let started = Date()
        for root in lines.roots { tree.watch(tree: root) }
        log(String(cFormat: "watching %ld folders of %ld shares for host edits (%.1f s)", tree.watchCount, lines.roots.count,
                   Date().timeIntervalSince(started)))
        reportExhaustion(tree)
        var link: (session: Session, channel: Channel)?
        var failures = 0
        while true {
            let events = tree.read(timeout: 5)
            if tree.takeOverflow() {
                log("inotify's queue overflowed: some host edits raised no event in the guest")
            }
            reportExhaustion(tree)
            let text = events.compactMap { lines.line(mask: $0.mask, cookie: $0.cookie, hostPath: $0.path) }.joined()
            // One try on the link there is, one on a new one: a guest that is away misses the
            // edits made meanwhile (a watcher that starts later scans the folder itself).
            for attempt in 0..<2 {
                if link == nil {
                    if attempt == 0 && text.isEmpty { break }
                    link = connect(&failures)
                    if link == nil { return }
                }
                guard let current = link else { break }
                do {
                    if text.isEmpty {
                        try keepAlive(current)
                    } else {
                        try current.channel.writeAll(Data(text.utf8))
                    }
                    break
                } catch {
                    log("the session for host edits ended (\(error.message)); making a new one")
                    link = nil
                }
            }
        }
    }

    /// A session and the guest program's channel; nil (and the forwarder stops) if the guest
    /// cannot raise events at all. Retries while the guest is away.
    private func connect(_ failures: inout Int) -> (session: Session, channel: Channel)? {
        while true {
            do throws(MachineError) {
                let session = try guest.connect(timeout: 10)
                // No reply asked: each would stay in libssh2's memory for good
                // (`Session.configureKeepalive`), and the guest's sshd probes this session
                // itself, which `keepAlive` answers.
                session.configureKeepalive(interval: 5, wantReply: false)
                let channel: Channel
                do {
                    channel = try Channel(session: session)
                    try channel.exec(Self.guestCommand)
                } catch {
                    throw MachineError(error.message)
                }
                // The guest program says at once if it cannot work: wait a moment for an exit.
                session.isBlocking = false
                usleep(200_000)
                var scratch = [UInt8](repeating: 0, count: 512)
                _ = try? scratch.withUnsafeMutableBytes { buffer throws(SSHError) in try channel.read(into: buffer, stream: 1) }
                session.isBlocking = true
                if channel.receivedEOF {
                    let status = (try? channel.close()) ?? -1
                    log(status == Self.notSupported || status == 127
                        ? "\(guest.name)'s image cannot raise events for host edits (no machine_notify); `machine upgrade\(MachineName.commandSuffix(guest.name))` brings one that can"
                        : "\(Self.guestCommand) in \(guest.name) exited \(status); host edits will raise no events")
                    return nil
                }
                // Said each time: this session goes in through sshd's own port, as `machine ssh` does.
                log(failures > 0 ? "host edits reach \(guest.name) again, at \(session.peer)" : "host edits go to \(guest.name) at \(session.peer), on a session of their own")
                failures = 0
                return (session, channel)
            } catch {
                if failures == 0 { log("cannot reach \(guest.name) for host edits yet (\(error.message)); retrying") }
                failures += 1
                sleep(failures < 10 ? 1 : 5)
            }
        }
    }

    /// While no edit comes, the session still answers the guest sshd's keepalives (read what
    /// came, without waiting) and sends its own, so it is alive when the next edit comes.
    private func keepAlive(_ link: (session: Session, channel: Channel)) throws(SSHError) {
        link.session.isBlocking = false
        defer { link.session.isBlocking = true }
        var scratch = [UInt8](repeating: 0, count: 512)
        let read = scratch.withUnsafeMutableBytes { buffer in Result { () throws(SSHError) in try link.channel.read(into: buffer) } }
        _ = try read.get()
        _ = try link.session.sendKeepalive()
        if link.channel.receivedEOF {
            throw SSHError(kind: .library, code: -1, message: "the guest program ended", operation: "keeping the session for host edits")
        }
    }

    private var reportedExhaustion = false
    private func reportExhaustion(_ tree: InotifyTree) {
        guard let folder = tree.exhaustedAt, !reportedExhaustion else { return }
        reportedExhaustion = true
        let limit = (try? String(contentsOfFile: "/proc/sys/fs/inotify/max_user_watches", encoding: .utf8))?
            .trimmed() ?? "?"
        log("the host's inotify watches ran out (fs.inotify.max_user_watches = \(limit)) at \(folder): edits below it and in later folders raise no events in the guest; raise it (as root: sysctl fs.inotify.max_user_watches=1048576) and restart the machine, or share less")
    }
}
