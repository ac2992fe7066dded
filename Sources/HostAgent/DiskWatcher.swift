import FoundationEssentials
import HostOS
import MachineCore
import SSH

/// Measures the data disk in the guest every DataDiskUsage.interval seconds, and soon after
/// containers start or end (what one wrote may have filled it), for `status`, `ls` and `up` to
/// warn from (disk.json). On a thread with a blocking SSH session of its own, kept between
/// measurements (a new one costs an emulated guest more than the command).
final class DiskWatcher: @unchecked Sendable {
    let guest: GuestSSH
    let destination: URL
    let log: (String) -> Void
    private var warned = false
    private let turn = Condition()
    private var asked = false

    /// Measurements are at least this far apart: a burst of containers ending is measured at
    /// most once every 5 s, however many ask.
    static let leastGap: TimeInterval = 5

    init(guest: GuestSSH, destination: URL, log: @escaping (String) -> Void) {
        self.guest = guest
        self.destination = destination
        self.log = log
    }

    func start() {
        Threads.detach { [self] in
            var session: Session?
            var last = Date.distantPast
            while true {
                waitForTurn(session == nil ? 5 : DataDiskUsage.interval)
                let since = Date().timeIntervalSince(last)
                if since < Self.leastGap { Threads.sleep(Self.leastGap - since) }
                last = Date()
                do throws(MachineError) {
                    let current: Session
                    if let session {
                        current = session
                    } else {
                        current = try guest.connect(timeout: 10)
                        // Said each time: this session goes in through sshd's own port, as `machine ssh` does.
                        log("the data disk of \(guest.name) is measured at \(current.peer), on a session of its own")
                    }
                    session = current
                    let measured: DataDiskUsage?
                    do throws(SSHError) {
                        measured = try DataDiskUsage.measure(over: current)
                    } catch {
                        session = nil
                        continue
                    }
                    guard let usage = measured else { continue }
                    usage.save(to: destination)
                    // Said once in the log each time it crosses the threshold.
                    let warning = usage.warning(machine: guest.name)
                    if let warning, !warned { log(warning) }
                    warned = warning != nil
                } catch {
                    session = nil
                }
            }
        }
    }

    /// Asks for a measurement now rather than at the end of the interval.
    func measureSoon() {
        turn.lock()
        asked = true
        turn.signal()
        turn.unlock()
    }

    /// Waits `seconds`, or until a measurement is asked for.
    private func waitForTurn(_ seconds: TimeInterval) {
        let until = Date().addingTimeInterval(seconds)
        turn.lock()
        defer { turn.unlock() }
        while !asked {
            let left = until.timeIntervalSinceNow
            guard left > 0 else { break }
            _ = turn.wait(seconds: left)
        }
        asked = false
    }
}
