import MachineCore

/// The running containers the port watcher knows of, by ID: the engine's whole list at the
/// start (and whenever a read of its events asks for all), then, for each container an event
/// names, the engine's answer about that one. Every entry is the guest's to write, so what is
/// kept is bounded: the first name, the ports a listener could be opened for, and at most
/// `containerLimit` containers and `portLimit` ports in all (past either, the watcher goes back
/// to the whole list, itself bounded in bytes).
struct RunningContainers {
    static let containerLimit = 4096
    static let portLimit = 1 << 18

    private var byID: [String: ListedContainer] = [:]
    private var portCount = 0

    var count: Int { byID.count }

    /// The engine's whole list in place of what was known.
    mutating func replace(with list: [ListedContainer]) {
        byID = [:]
        portCount = 0
        for container in list.prefix(Self.containerLimit) { _ = put(container) }
    }

    /// The engine's answer about container `id` (a list filtered by that ID): only the entry
    /// of that ID counts; with none, it runs no more. False when keeping it would pass a limit
    /// (nothing changed then: ask for the whole list).
    mutating func update(_ id: String, answer: [ListedContainer]) -> Bool {
        remove(id)
        guard let container = answer.first(where: { $0.id == id }) else { return true }
        return put(container)
    }

    /// In the engine's order, newest first (then by ID, so that the order never depends on
    /// the dictionary's): of two containers asking for one host port, the first wins.
    var listed: [ListedContainer] {
        byID.values.sorted { ($0.created ?? 0, $1.id) > ($1.created ?? 0, $0.id) }
    }

    private mutating func remove(_ id: String) {
        if let old = byID.removeValue(forKey: id) { portCount -= old.ports?.count ?? 0 }
    }

    private mutating func put(_ container: ListedContainer) -> Bool {
        var ports: [ListedContainer.Port] = []
        var seen = Set<ListedContainer.Port>()
        for port in container.ports ?? [] where port.forwardablePort != nil {
            if seen.insert(port).inserted { ports.append(port) }
            if ports.count > Self.portLimit { return false }
        }
        guard byID.count < Self.containerLimit, portCount + ports.count <= Self.portLimit else { return false }
        let name = container.names?.first.map { String($0.unicodeScalars.prefix(256)) }
        byID[container.id] = ListedContainer(id: container.id, names: name.map { [$0] }, ports: ports, created: container.created)
        portCount += ports.count
        return true
    }
}
