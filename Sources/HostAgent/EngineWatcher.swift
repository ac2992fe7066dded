import Foundation
import MachineCore
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// Follows the engine's container events through the forwarded socket and reports the
/// published ports of the running containers: once at the start (containers already running)
/// and again after every container start, stop or death. Runs on its own thread with plain
/// blocking sockets; it never touches the agent's SSH session, only its host socket.
final class EngineWatcher: @unchecked Sendable {
    let socketPath: String
    let report: @Sendable (Data) -> Void

    /// Container events that can change which ports are published.
    static let relevant = ["start", "die", "stop", "kill", "destroy", "pause", "unpause", "restart"]

    init(socketPath: String, report: @escaping @Sendable (Data) -> Void) {
        self.socketPath = socketPath
        self.report = report
    }

    func start() {
        Thread.detachNewThread { [self] in
            var failures = 0
            while true {
                if follow() { failures = 0 } else { failures += 1 }
                // Quick retries for the first 30 s (an engine starting with its guest, or
                // restarting), so published ports follow within a moment; then a calmer pace.
                usleep(failures < 100 ? 300_000 : 2_000_000)
            }
        }
    }

    /// One subscription: subscribe, list, then list again on every relevant event. Returns
    /// whether the engine answered at all.
    private func follow() -> Bool {
        let filters = #"{"type":["container"]}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        guard let response = UnixHTTP.open(socket: socketPath, target: "/events?filters=\(filters)") else { return false }
        let events = response.fd
        defer { close(events) }
        guard response.status == 200 else { return false }
        guard let list = containers() else { return false }
        report(list)
        var pending = response.bodyStart
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending[..<newline]
                pending = Data(pending[pending.index(after: newline)...])
                if let event = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
                   let action = (event["Action"] ?? event["status"]) as? String,
                   Self.relevant.contains(action), let list = containers() {
                    report(list)
                }
            }
            let count = recv(events, &buffer, buffer.count, 0)
            if count <= 0 { return true }
            pending.append(contentsOf: buffer[0..<count])
        }
    }

    /// GET /containers/json: the running containers and their ports.
    private func containers() -> Data? {
        guard let (status, body) = UnixHTTP.get(socket: socketPath, target: "/containers/json"), status == 200 else { return nil }
        return body
    }
}
