import FoundationEssentials

/// The engine's `/events` stream cut into its JSON lines, one container event each. The engine
/// runs in the guest, so every byte here is the guest's: memory is bounded (a line longer than
/// `lineLimit` is skipped to its end, and counted), and a burst of events names each container
/// once. Fuzzed by MachineFuzz's `events` target.
public struct EngineEvents {
    /// Docker's container events are about 1 KiB, more with many labels; 1 MiB is far beyond any.
    public static let defaultLineLimit = 1 << 20
    public let lineLimit: Int

    public init(lineLimit: Int = defaultLineLimit) {
        self.lineLimit = lineLimit
    }

    /// What a read asks the watcher to look at again.
    public struct Changes: Equatable {
        /// The containers whose events may have changed what they publish, each once, in order.
        public var containers: [String] = []
        /// Every container: an event that names none it can ask about, a line too long to
        /// read (it might have been an event), or more containers than are worth asking about
        /// one by one.
        public var all = false

        public var isEmpty: Bool { !all && containers.isEmpty }

        mutating func add(_ id: String?) {
            guard !all else { return }
            guard let id, EngineEvents.isContainerID(id) else { all = true; containers = []; return }
            if containers.contains(id) { return }
            if containers.count == EngineEvents.containersPerRead {
                all = true
                containers = []
            } else {
                containers.append(id)
            }
        }
    }

    /// More containers than this in one read: one list of them all costs less than a
    /// question for each.
    static let containersPerRead = 16

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

    /// Takes the bytes that came; what among them may have changed the published ports.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Changes {
        var changes = Changes()
        var start = 0
        while start < bytes.count {
            let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n"))
            let end = newline ?? bytes.count
            if !skipping {
                if pending.count + (end - start) > lineLimit {
                    skipping = true
                    pending = []
                    overlong += 1
                    changes.add(nil)
                } else {
                    pending.append(contentsOf: bytes[start..<end])
                }
            }
            guard newline != nil else { break }
            if !skipping && !pending.isEmpty {
                switch Self.event(of: pending) {
                case .some(let event): if Self.relevant.contains(event.action) { changes.add(event.container) }
                case .none: unreadable += 1
                }
            }
            pending.removeAll(keepingCapacity: pending.count <= 65536)
            skipping = false
            start = end + 1
        }
        return changes
    }

    /// A container's ID as the engine writes it: up to 64 lowercase hex digits, so that it
    /// can go into a query as it is.
    static func isContainerID(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The event's action ("start", "die", "exec_start: sh") and container; nil when the line
    /// is not an event.
    static func event(of line: [UInt8]) -> (action: String, container: String?)? {
        guard let event = try? JSONDecoder().decode(Event.self, from: Data(line)), let action = event.action ?? event.status else { return nil }
        return (action, event.actor?.id ?? event.id)
    }

    /// The fields of an engine event that say what happened to which container (newer
    /// engines: Action and Actor.ID; older: status and id).
    private struct Event: Decodable {
        struct Actor: Decodable {
            let id: String?
            enum CodingKeys: String, CodingKey { case id = "ID" }
        }
        let action: String?
        let status: String?
        let actor: Actor?
        let id: String?

        enum CodingKeys: String, CodingKey {
            case action = "Action", actor = "Actor"
            case status, id
        }
    }
}
