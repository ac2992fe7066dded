import FoundationEssentials
import MachineCore
import HostOS
#if canImport(Glibc)
import Glibc  // recv(2) on the engine's event stream, read as it arrives
#endif

/// Follows the engine's container events and reports the published ports of the running
/// containers: the whole list once at the start (containers already running), then, after
/// each event that can change them, the engine's answer about that one container. Runs on
/// its own thread with plain blocking sockets, through `socketPath`: the forwarded ports'
/// agent serves it on that agent's own SSH session (`AgentMain`), so the watch never queues
/// with the docker clients on the engine socket's session.
final class EngineWatcher: @unchecked Sendable {
    let socketPath: String
    let report: @Sendable ([ListedContainer]) -> Void
    let log: (String) -> Void

    /// A list of a few thousand containers is a few MiB; a longer answer is not read.
    static let listLimit = 16 << 20
    /// One container's entry is a few KiB, more with many ports published.
    static let containerLimit = 1 << 20

    init(socketPath: String, report: @escaping @Sendable ([ListedContainer]) -> Void, log: @escaping (String) -> Void) {
        self.socketPath = socketPath
        self.report = report
        self.log = log
    }

    func start() {
        Threads.detach { [self] in
            var failures = 0
            while true {
                if follow() { failures = 0 } else { failures += 1 }
                // Quick retries for the first 30 s (an engine starting with its guest, or
                // restarting), so published ports follow within a moment; then a calmer pace.
                usleep(failures < 100 ? 300_000 : 2_000_000)
            }
        }
    }

    /// One subscription: subscribe, list them all, then ask about each container an event
    /// names. Returns whether the engine answered at all.
    private func follow() -> Bool {
        // {"type":["container"]}, percent-encoded.
        let filters = "%7B%22type%22%3A%5B%22container%22%5D%7D"
        guard let response = UnixHTTP.open(socket: socketPath, target: "/events?filters=\(filters)") else { return false }
        let events = response.fd
        defer { close(events) }
        guard response.status == 200 else { return false }
        var running = RunningContainers()
        guard relistAll(&running) else { return false }
        report(running.listed)
        var stream = EngineEvents()
        var said = (overlong: 0, unreadable: 0)
        var changes = response.bodyStart.withUnsafeBytes { stream.feed($0) }
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            if stream.overlong > said.overlong || stream.unreadable > said.unreadable {
                log("the engine's event stream had \(stream.overlong) lines over \(stream.lineLimit) bytes and \(stream.unreadable) that were not events, so far; skipped")
                said = (stream.overlong, stream.unreadable)
            }
            if !changes.isEmpty, apply(changes, to: &running) { report(running.listed) }
            let count = recv(events, &buffer, buffer.count, 0)
            if count <= 0 { return true }
            changes = buffer.withUnsafeBytes { stream.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
    }

    /// Asks the engine about what changed; true when `running` was brought up to date.
    private func apply(_ changes: EngineEvents.Changes, to running: inout RunningContainers) -> Bool {
        if !changes.all {
            var answered = true
            for id in changes.containers {
                // {"id":["<id>"]}, percent-encoded; the ID is hex digits (EngineEvents.isContainerID).
                let target = "/containers/json?filters=%7B%22id%22%3A%5B%22\(id)%22%5D%7D"
                guard let answer = list(target, limit: Self.containerLimit), running.update(id, answer: answer) else {
                    answered = false
                    break
                }
            }
            if answered { return true }
        }
        return relistAll(&running)
    }

    private func relistAll(_ running: inout RunningContainers) -> Bool {
        guard let all = list("/containers/json", limit: Self.listLimit) else { return false }
        running.replace(with: all)
        return true
    }

    /// GET `target`, a list of running containers and their ports; nil if the engine gave none.
    private func list(_ target: String, limit: Int) -> [ListedContainer]? {
        guard let (status, body) = UnixHTTP.get(socket: socketPath, target: target, limit: limit), status == 200 else { return nil }
        return ListedContainer.list(body)
    }
}
