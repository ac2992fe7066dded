import Foundation
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
                // Quick retries first (the engine restarting), then a calmer pace.
                usleep(failures < 10 ? 300_000 : 2_000_000)
            }
        }
    }

    /// One subscription: subscribe, list, then list again on every relevant event. Returns
    /// whether the engine answered at all.
    private func follow() -> Bool {
        let filters = #"{"type":["container"]}"#.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        guard let events = LocalSocket.connectUnix(socketPath) else { return false }
        defer { close(events) }
        guard request(events, "GET /events?filters=\(filters) HTTP/1.0"), let (status, rest) = readHead(events), status == 200 else {
            return false
        }
        guard let list = containers() else { return false }
        report(list)
        var pending = rest
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
        guard let fd = LocalSocket.connectUnix(socketPath) else { return nil }
        defer { close(fd) }
        guard request(fd, "GET /containers/json HTTP/1.0"), let (status, rest) = readHead(fd), status == 200 else { return nil }
        var body = rest
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count < 0 { return nil }
            if count == 0 { return body }
            body.append(contentsOf: buffer[0..<count])
        }
    }

    private func request(_ fd: Int32, _ line: String) -> Bool {
        let bytes = Array("\(line)\r\nHost: docker\r\n\r\n".utf8)
        return send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count
    }

    /// Reads the response head; its status code and whatever body bytes came with it.
    private func readHead(_ fd: Int32) -> (Int, Data)? {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        let separator = Data("\r\n\r\n".utf8)
        while data.count < 65536 {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { return nil }
            data.append(contentsOf: buffer[0..<count])
            if let range = data.range(of: separator) {
                let head = String(decoding: data[..<range.lowerBound], as: UTF8.self)
                let fields = head.split(separator: " ", maxSplits: 2)
                guard fields.count >= 2, let status = Int(fields[1]) else { return nil }
                return (status, Data(data[range.upperBound...]))
            }
        }
        return nil
    }
}
