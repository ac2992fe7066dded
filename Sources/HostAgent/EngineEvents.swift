import FoundationEssentials

/// The engine's `/events` stream cut into its JSON lines, one container event each. The engine
/// runs in the guest, so every byte here is the guest's: memory is bounded (a line longer than
/// `lineLimit` is skipped to its end, and counted), and a burst of events asks for one new
/// container list, not one per event. Fuzzed by MachineFuzz's `events` target.
public struct EngineEvents {
    /// Docker's container events are about 1 KiB, more with many labels; 1 MiB is far beyond any.
    public static let defaultLineLimit = 1 << 20
    public let lineLimit: Int

    public init(lineLimit: Int = defaultLineLimit) {
        self.lineLimit = lineLimit
    }

    /// Container events that can change which ports are published.
    static let relevant: Set<String> = ["start", "die", "stop", "kill", "destroy", "pause", "unpause", "restart"]

    /// The unfinished line's bytes.
    private var pending: [UInt8] = []
    public var pendingCount: Int { pending.count }
    /// Inside a line that outgrew the limit: its bytes are thrown away up to its newline.
    private var skipping = false
    /// Lines skipped for their length, and lines that were not an event, so far.
    public private(set) var overlong = 0
    public private(set) var unreadable = 0

    /// Takes the bytes that came; true when a line among them may have changed the published
    /// ports (a relevant event, or a line too long to read, which might have been one).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var changed = false
        var start = 0
        while start < bytes.count {
            let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n"))
            let end = newline ?? bytes.count
            if !skipping {
                if pending.count + (end - start) > lineLimit {
                    skipping = true
                    pending = []
                    overlong += 1
                    changed = true
                } else {
                    pending.append(contentsOf: bytes[start..<end])
                }
            }
            guard newline != nil else { break }
            if !skipping && !pending.isEmpty {
                switch Self.action(of: pending) {
                case .some(let action): changed = changed || Self.relevant.contains(action)
                case .none: unreadable += 1
                }
            }
            pending.removeAll(keepingCapacity: pending.count <= 65536)
            skipping = false
            start = end + 1
        }
        return changed
    }

    /// The event's action ("start", "die", "exec_start: sh"); nil when the line is not an event.
    static func action(of line: [UInt8]) -> String? {
        guard let event = try? JSONDecoder().decode(Event.self, from: Data(line)) else { return nil }
        return event.action ?? event.status
    }

    /// The fields of an engine event that say what happened (newer engines: Action; older: status).
    private struct Event: Decodable {
        let action: String?
        let status: String?

        enum CodingKeys: String, CodingKey {
            case action = "Action"
            case status
        }
    }
}
