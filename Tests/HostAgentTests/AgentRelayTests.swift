import Foundation
@testable import HostAgent
import MachineCore
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The agent's relay end to end in one process: a host socket served by a real Agent, its
/// SSH session to a local OpenSSH sshd (standing in for the guest's), and behind it a server
/// that answers only once it has read to EOF. What a client of the engine's socket or of a
/// forwarded port sees: its half-close reaches the far end, every byte arrives, and the far
/// end's close comes back as EOF after the answer.
@Suite(.serialized) struct AgentRelayTests {
    /// The loop's thread is told to stop through this (the agent itself stays on its thread).
    final class StopFlag: @unchecked Sendable {
        private let lock = NSLock()
        private var stopped = false
        func stop() { lock.withLock { stopped = true } }
        var isStopped: Bool { lock.withLock { stopped } }
    }

    /// A machine folder whose "guest" is the local sshd: its host key pinned, its client key
    /// as the machine's key.
    static func guest(_ server: LocalSSHD) throws -> GuestSSH {
        let folder = server.folder.appendingPathComponent("machine")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let files = MachineFiles(folder: folder)
        try "127.0.0.1 \(server.hostKeyPublic)\n".write(to: files.knownHosts, atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(at: server.clientKey, to: files.privateKey)
        return GuestSSH(name: "relay-test", port: server.port, files: files)
    }

    /// Sends `payload` on a new connection to the agent's socket, half-closes, and returns all
    /// it reads until EOF.
    static func exchange(agentSocket: String, payload: [UInt8]) throws -> String {
        let client = try TestSockets.connectUnix(agentSocket)
        defer { close(client) }
        var sent = 0
        while sent < payload.count {
            let count = payload[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            try #require(count > 0)
            sent += count
        }
        shutdown(client, Int32(SHUT_WR))
        var reply = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while true {
            let count = recv(client, &buffer, buffer.count, 0)
            try #require(count >= 0, "no EOF from the agent within 30 s")
            if count == 0 { break }
            reply += buffer[..<count]
        }
        return String(decoding: reply, as: UTF8.self)
    }

    /// Runs `body` with an agent serving `agentSocket` -> `target` on its own thread.
    static func withAgent(_ server: LocalSSHD, agentSocket: String, target: Agent.Target, _ body: () throws -> Void) throws {
        let flag = StopFlag()
        let guest = try guest(server)
        let finished = DispatchSemaphore(value: 0)
        let ready = DispatchSemaphore(value: 0)
        let thread = Thread {
            let agent = Agent(guest: guest, log: { _ in })
            do {
                try agent.listen(unixSocket: agentSocket, name: "test", target: target)
            } catch {
                Issue.record("listen failed: \(error)")
            }
            ready.signal()
            agent.run(until: { flag.isStopped })
            finished.signal()
        }
        thread.start()
        ready.wait()
        defer {
            flag.stop()
            finished.wait()
        }
        try body()
    }

    @Test(.enabled(if: getuid() == 0, "the local sshd logs in as root"))
    func aUnixSocketTargetGetsTheClientsHalfCloseAndItsOwnCloseComesBack() throws {
        let server = try LocalSSHD()
        let far = server.folder.appendingPathComponent("far.sock").path
        let agentSocket = server.folder.appendingPathComponent("agent.sock").path
        let payload = (0..<(3 << 20)).map { UInt8($0 & 0xff) }
        try Self.withAgent(server, agentSocket: agentSocket, target: .unixSocket(far)) {
            TestSockets.countingServer(listening: try TestSockets.unixListener(far))
            #expect(try Self.exchange(agentSocket: agentSocket, payload: payload) == "got \(3 << 20) bytes")
            // A client that says nothing: its EOF alone still reaches the far end.
            TestSockets.countingServer(listening: try TestSockets.unixListener(far))
            #expect(try Self.exchange(agentSocket: agentSocket, payload: []) == "got 0 bytes")
        }
    }

    @Test(.enabled(if: getuid() == 0, "the local sshd logs in as root"))
    func aTCPTargetGetsTheSame() throws {
        let server = try LocalSSHD()
        let agentSocket = server.folder.appendingPathComponent("agent.sock").path
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        try #require(bound == 0 && listen(fd, 4) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        try Self.withAgent(server, agentSocket: agentSocket, target: .tcp(host: "127.0.0.1", port: port)) {
            TestSockets.countingServer(listening: fd)
            let reply = try Self.exchange(agentSocket: agentSocket, payload: [UInt8](repeating: 7, count: 100_000))
            #expect(reply == "got 100000 bytes")
        }
    }

    /// Keepalives an agent's session sent in its first `seconds` connected to a local sshd
    /// run with `settings`.
    static func keepalivesSent(settings: [String], seconds: Double) throws -> Int {
        let server = try LocalSSHD(settings: settings)
        let guest = try guest(server)
        let count = Counted()
        let finished = DispatchSemaphore(value: 0)
        let thread = Thread {
            let agent = Agent(guest: guest, log: { _ in })
            let started = Date()
            var connectedAt: Date?
            agent.run(until: {
                guard let session = agent.session else { return Date().timeIntervalSince(started) > 30 }
                if connectedAt == nil { connectedAt = Date() }
                guard let connectedAt, Date().timeIntervalSince(connectedAt) >= seconds else { return false }
                count.set(session.keepalivesSent)
                return true
            })
            finished.signal()
        }
        thread.start()
        finished.wait()
        return try #require(count.value, "the agent never connected")
    }

    final class Counted: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: Int?
        func set(_ value: Int) { lock.withLock { stored = value } }
        var value: Int? { lock.withLock { stored } }
    }

    /// libssh2 1.10 keeps every reply to a keepalive in memory for the session's life, and
    /// every channel read walks them: the agent asks the guest for a word only when it has been
    /// silent, never while the guest's sshd probes it every quiet second (as the guest's do).
    @Test(.enabled(if: getuid() == 0, "the local sshd logs in as root"))
    func theAgentAsksForAWordOnlyWhenTheGuestIsSilent() throws {
        // Both sessions at once, each with an sshd of its own: 7 s of the unit tests, not 14.
        let silent = Counted()
        let finished = DispatchSemaphore(value: 0)
        Thread {
            // Without the guest's probes it asks after 2 s of silence, once per silence.
            if let asked = try? Self.keepalivesSent(settings: [], seconds: 7) { silent.set(asked) }
            finished.signal()
        }.start()
        let probed = try Self.keepalivesSent(settings: ["ClientAliveInterval 1"], seconds: 7)
        finished.wait()
        #expect(probed == 0)
        let asked = try #require(silent.value, "the agent of the silent guest never connected")
        #expect((1...4).contains(asked))
    }
}
