import FoundationEssentials
import MachineCore
import HostOS
#if canImport(Glibc)
import Glibc  // recv(2) on the engine's event stream, read as it arrives
#endif

/// Follows the engine's container events through the forwarded socket and reports the
/// published ports of the running containers: once at the start (containers already running)
/// and again after every container start, stop or death. Runs on its own thread with plain
/// blocking sockets; it never touches the agent's SSH session, only its host socket.
final class EngineWatcher: @unchecked Sendable {
    let socketPath: String
    let report: @Sendable (Data) -> Void
    let log: (String) -> Void

    /// A list of a few thousand containers is a few MiB; a longer answer is not read.
    static let listLimit = 16 << 20

    init(socketPath: String, report: @escaping @Sendable (Data) -> Void, log: @escaping (String) -> Void) {
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

    /// One subscription: subscribe, list, then list again after each read that brought a
    /// relevant event. Returns whether the engine answered at all.
    private func follow() -> Bool {
        // {"type":["container"]}, percent-encoded.
        let filters = "%7B%22type%22%3A%5B%22container%22%5D%7D"
        guard let response = UnixHTTP.open(socket: socketPath, target: "/events?filters=\(filters)") else { return false }
        let events = response.fd
        defer { close(events) }
        guard response.status == 200 else { return false }
        guard let list = containers() else { return false }
        report(list)
        var stream = EngineEvents()
        var said = (overlong: 0, unreadable: 0)
        var changed = response.bodyStart.withUnsafeBytes { stream.feed($0) }
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            if stream.overlong > said.overlong || stream.unreadable > said.unreadable {
                log("the engine's event stream had \(stream.overlong) lines over \(stream.lineLimit) bytes and \(stream.unreadable) that were not events, so far; skipped")
                said = (stream.overlong, stream.unreadable)
            }
            if changed, let list = containers() { report(list) }
            let count = recv(events, &buffer, buffer.count, 0)
            if count <= 0 { return true }
            changed = buffer.withUnsafeBytes { stream.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
    }

    /// GET /containers/json: the running containers and their ports.
    private func containers() -> Data? {
        guard let (status, body) = UnixHTTP.get(socket: socketPath, target: "/containers/json", limit: Self.listLimit), status == 200
        else { return nil }
        return body
    }
}
