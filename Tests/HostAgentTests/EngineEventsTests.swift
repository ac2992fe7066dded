@testable import HostAgent
import FoundationEssentials
import MachineCore
import Testing

@Suite struct EngineEventsTests {
    func feed(_ stream: inout EngineEvents, _ text: String) -> EngineEvents.Changes {
        Array(text.utf8).withUnsafeBytes { stream.feed($0) }
    }

    static func id(_ digit: Character) -> String { String(repeating: digit, count: 64) }
    func event(_ action: String, _ id: String) -> String {
        #"{"Type":"container","Action":"\#(action)","Actor":{"ID":"\#(id)"}}"#
    }
    var start: String { event("start", Self.id("3")) }
    var exec: String { event("exec_start: sh", Self.id("3")) }

    @Test func aRelevantEventNamesItsContainerOnceItsLineIsWhole() {
        var stream = EngineEvents()
        let half = start.index(start.startIndex, offsetBy: 20)
        var changes = feed(&stream, String(start[..<half]))
        #expect(changes.isEmpty)
        changes = feed(&stream, String(start[half...]) + "\n")
        #expect(changes == .init(containers: [Self.id("3")]))
        changes = feed(&stream, exec + "\n")
        #expect(changes.isEmpty)
    }

    @Test func aBurstNamesEachContainerOnceInOrder() {
        var stream = EngineEvents()
        let burst = [event("start", Self.id("a")), event("die", Self.id("b")), event("stop", Self.id("a"))]
        let changes = feed(&stream, String(repeating: burst.joined(separator: "\n") + "\n", count: 20))
        #expect(changes == .init(containers: [Self.id("a"), Self.id("b")]))
        #expect(stream.unreadable == 0 && stream.overlong == 0)
    }

    /// Older engines write the ID at the top (`id`) and the action as `status`.
    @Test func anOlderEnginesEventNamesItsContainerToo() {
        var stream = EngineEvents()
        let changes = feed(&stream, #"{"status":"die","id":"\#(Self.id("c"))"}"# + "\n")
        #expect(changes == .init(containers: [Self.id("c")]))
    }

    /// An ID that could not go into a query as it is, an event with no ID, or more containers
    /// than are worth asking about one by one: the whole list instead.
    @Test func whatCannotBeAskedAboutOneByOneAsksForAll() {
        var stream = EngineEvents()
        var changes = feed(&stream, event("start", "3f1e%22%5D") + "\n")
        #expect(changes.all)
        changes = feed(&stream, event("start", Self.id("A")) + "\n")
        #expect(changes.all)
        changes = feed(&stream, #"{"Action":"die"}"# + "\n")
        #expect(changes.all)
        let many = (0..<17).map { event("start", String(repeating: "0", count: 62) + String(format2: $0)) }
        changes = feed(&stream, many.joined(separator: "\n") + "\n")
        #expect(changes.all && changes.containers.isEmpty)
        changes = feed(&stream, many.prefix(16).joined(separator: "\n") + "\n")
        #expect(!changes.all && changes.containers.count == 16)
    }

    /// A line that never ends holds at most the limit, and is counted when its end comes; the
    /// lines after it are read again.
    @Test func aLineOverTheLimitIsSkippedToItsEnd() {
        var stream = EngineEvents(lineLimit: 1000)
        var changes = feed(&stream, String(repeating: "x", count: 999))
        #expect(changes.isEmpty)
        changes = feed(&stream, "yy")
        #expect(changes.all)
        for _ in 0..<100 { _ = feed(&stream, String(repeating: "z", count: 4096)) }
        #expect(stream.pendingCount == 0 && stream.overlong == 1)
        changes = feed(&stream, "\n" + exec + "\nnot json\n")
        #expect(changes.isEmpty)
        #expect(stream.unreadable == 1)
        changes = feed(&stream, start + "\n")
        #expect(changes == .init(containers: [Self.id("3")]))
    }
}

private extension String {
    init(format2 value: Int) {
        let hex = String(value, radix: 16)
        self = hex.count < 2 ? "0" + hex : hex
    }
}

@Suite struct RunningContainersTests {
    func container(_ id: String, created: Int, ports: [(Int, String)]) -> String {
        let listed = ports.map { #"{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":\#($0.0),"Type":"\#($0.1)"}"# }
        return #"{"Id":"\#(id)","Names":["/\#(id)"],"Created":\#(created),"Ports":[\#(listed.joined(separator: ","))]}"#
    }
    func list(_ entries: String...) -> [ListedContainer] {
        ListedContainer.list(Data("[\(entries.joined(separator: ","))]".utf8)) ?? []
    }
    func forwards(_ running: RunningContainers) -> [String] {
        PortForwards.automatic(containers: running.listed, publishAddress: "127.0.0.1", sshPort: 2222).map { "\($0.hostPort)/\($0.proto) \($0.container ?? "")" }
    }

    /// The same forwards as a whole new list would give, after a start, a stop and a
    /// container the engine no longer lists.
    @Test func answersAboutOneContainerKeepTheWholeListUpToDate() {
        var running = RunningContainers()
        running.replace(with: list(container("aa", created: 1, ports: [(8080, "tcp")]), container("bb", created: 2, ports: [(5353, "udp")])))
        #expect(forwards(running) == ["5353/udp bb", "8080/tcp aa"])
        var kept = running.update("cc", answer: list(container("cc", created: 3, ports: [(9000, "tcp")])))
        #expect(kept)
        #expect(forwards(running) == ["5353/udp bb", "8080/tcp aa", "9000/tcp cc"])
        kept = running.update("aa", answer: [])
        #expect(kept)
        #expect(forwards(running) == ["5353/udp bb", "9000/tcp cc"])
        // Only the entry of the ID asked about counts, whatever else the answer lists.
        kept = running.update("dd", answer: list(container("ee", created: 4, ports: [(7000, "tcp")])))
        #expect(kept)
        #expect(running.count == 2)
    }

    /// Two containers asking for one host port: the newest wins, as in the engine's own list.
    @Test func theNewestContainerWinsAHostPortAsInTheEnginesList() {
        var running = RunningContainers()
        var kept = running.update("aa", answer: list(container("aa", created: 1, ports: [(8080, "tcp")])))
        #expect(kept)
        kept = running.update("bb", answer: list(container("bb", created: 2, ports: [(8080, "tcp")])))
        #expect(kept)
        #expect(forwards(running) == ["8080/tcp bb"])
    }

    /// A guest that lists more than is kept: the update is refused (the watcher asks for the
    /// whole list, bounded in bytes), and nothing it sent is kept.
    @Test func whatIsKeptStaysBounded() {
        var running = RunningContainers()
        let tooMany = (0...RunningContainers.portLimit).map { ListedContainer.Port(ip: "10.0.\($0 / 65535).1", publicPort: 1 + $0 % 65535, type: "tcp") }
        let huge = ListedContainer(id: "ff", names: ["/ff"], ports: tooMany)
        var kept = running.update("ff", answer: [huge])
        #expect(!kept)
        #expect(running.count == 0)
        for index in 0..<RunningContainers.containerLimit {
            let added = running.update("\(index)", answer: [ListedContainer(id: "\(index)")])
            #expect(added)
        }
        kept = running.update("last", answer: [ListedContainer(id: "last")])
        #expect(!kept)
        #expect(running.count == RunningContainers.containerLimit)
    }
}
