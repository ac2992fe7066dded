import FoundationEssentials
import HostOS
import MachineCore
import SSH
#if canImport(Glibc)
import Glibc  // write(2) of one byte to the wake pipe that the agent's poll(2) waits on
#endif

/// The latest container list from the watcher thread, and the pipe that wakes the loop.
final class Mailbox: @unchecked Sendable {
    private let lock = Lock()
    private var latest: [ListedContainer]?
    private let wakeFD: Int32

    init(wakeFD: Int32) {
        self.wakeFD = wakeFD
    }

    func put(_ data: [ListedContainer]) {
        lock.lock()
        latest = data
        lock.unlock()
        var byte: UInt8 = 1
        _ = write(wakeFD, &byte, 1)
    }

    func take() -> [ListedContainer]? {
        lock.lock()
        defer { lock.unlock() }
        let data = latest
        latest = nil
        return data
    }
}

/// A job that runs on one thread at a time; a second start while it runs is refused.
final class OneAtATime: @unchecked Sendable {
    private let lock = Lock()
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
