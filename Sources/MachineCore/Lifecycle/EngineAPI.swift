import FoundationEssentials
import HostOS

/// The engine's API, as the CLI asks it through the agent's socket.
public enum EngineAPI {
    /// Whether the engine behind the unix socket answers `/_ping` with OK.
    public static func ping(socket path: String, timeout: Double = 5) -> Bool {
        guard let (status, body) = UnixHTTP.get(socket: path, target: "/_ping", timeout: timeout, limit: 65536) else { return false }
        return status == 200 && body == Data("OK".utf8)
    }
}
