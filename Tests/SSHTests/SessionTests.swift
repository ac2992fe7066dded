import Foundation
import SSH
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct SessionTests {
    @Test func pinnedKeyLoginAndCommandExitStatus() throws {
        let server = try LocalSSHD()
        let session = try Session(host: "127.0.0.1", port: server.port)
        let pinned = try #require(HostKey(line: server.hostKeyPublic))
        #expect(try session.hostKey() == pinned)
        // Same fingerprint as OpenSSH's own tool prints.
        let expected = try LocalSSHD.shell("ssh-keygen -l -f '\(server.folder.path)/host_ed25519.pub' | cut -d' ' -f2")
        #expect(try session.hostKeyFingerprint() == expected.trimmingCharacters(in: .whitespacesAndNewlines))
        try session.verifyHostKey(pinned: pinned)
        try session.authenticate(user: server.user, privateKeyPath: server.clientKey.path)
        let result = try session.run("echo out; echo err >&2; exit 3")
        #expect(result.status == 3)
        #expect(String(decoding: result.output, as: UTF8.self) == "out\n")
        #expect(String(decoding: result.errors, as: UTF8.self) == "err\n")
    }

    /// A guest that answers a command with more than the caller takes fails the command
    /// instead of growing the caller's memory.
    @Test func anAnswerOverTheLimitIsAnError() throws {
        let server = try LocalSSHD()
        let session = try Session(host: "127.0.0.1", port: server.port)
        try session.verifyHostKey(pinned: try #require(HostKey(line: server.hostKeyPublic)))
        try session.authenticate(user: server.user, privateKeyPath: server.clientKey.path)
        #expect(try session.run("head -c 100000 /dev/zero", limit: 100_000).output.count == 100_000)
        #expect(throws: SSHError.self) { try session.run("head -c 100001 /dev/zero", limit: 100_000) }
        #expect(throws: SSHError.self) { try session.run("yes", limit: 1 << 20) }
        // The session is still good for the next command.
        #expect(try session.run("echo ok").output == Data("ok\n".utf8))
    }

    @Test func anotherHostKeyIsRefusedBeforeLogin() throws {
        let server = try LocalSSHD()
        let session = try Session(host: "127.0.0.1", port: server.port)
        let other = try LocalSSHD.shell(
            "d=$(mktemp -d) && ssh-keygen -q -t ed25519 -N '' -f $d/k && cat $d/k.pub && rm -rf $d")
        let otherKey = try #require(HostKey(line: other))
        do {
            try session.verifyHostKey(pinned: otherKey)
            Issue.record("a different host key was accepted")
        } catch {
            #expect(error.kind == .hostKeyMismatch)
            #expect(error.message.contains("not the pinned one"))
        }
    }

    @Test func wrongClientKeyIsRefused() throws {
        let server = try LocalSSHD()
        let session = try Session(host: "127.0.0.1", port: server.port)
        let stranger = server.folder.appendingPathComponent("stranger")
        try LocalSSHD.shell("ssh-keygen -q -t ed25519 -N '' -f '\(stranger.path)'")
        #expect(throws: SSHError.self) {
            try session.authenticate(user: server.user, privateKeyPath: stranger.path)
        }
    }

    @Test func nothingListeningIsASystemError() throws {
        let port = try LocalSSHD.freePort()
        do {
            _ = try Session(host: "127.0.0.1", port: port)
            Issue.record("connected to a closed port")
        } catch {
            #expect(error.kind == .system)
            #expect(error.description.contains("127.0.0.1:\(port)"))
        }
    }

    final class Tally: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func add(_ count: Int) { lock.withLock { value += count } }
        var total: Int { lock.withLock { value } }
    }

    /// Copies `from` to `to` until `from` ends, then closes both, adding what moved to `tally`.
    static func relay(from: Int32, to: Int32, tally: Tally? = nil) -> Thread {
        Thread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = read(from, &buffer, buffer.count)
                if count <= 0 { break }
                tally?.add(count)
                guard buffer.withUnsafeBytes({ send(to, $0.baseAddress, count, Int32(MSG_NOSIGNAL)) }) == count else { break }
            }
            close(from)
            close(to)
        }
    }

    @Test func aSessionCanReadOneSocketAndWriteAnotherAndCountsWhatItRead() throws {
        // The agent's split session: sshd's words reach us on one socket, ours leave on another.
        let server = try LocalSSHD()
        let tcp = try Session.connectTCP(host: "127.0.0.1", port: server.port)
        var inbound: [Int32] = [-1, -1], outbound: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &inbound) == 0)
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &outbound) == 0)
        let relayed = Tally()
        let tcpCopy = dup(tcp)
        let fromServer = Self.relay(from: tcp, to: inbound[1], tally: relayed)
        let toServer = Self.relay(from: outbound[1], to: tcpCopy)
        fromServer.start()
        toServer.start()
        do {
            let session = try Session(socket: inbound[0], sendSocket: outbound[0], peer: "a split pair")
            try session.verifyHostKey(pinned: try #require(HostKey(line: server.hostKeyPublic)))
            try session.authenticate(user: server.user, privateKeyPath: server.clientKey.path)
            let result = try session.run("echo split")
            #expect(result.status == 0 && String(decoding: result.output, as: UTF8.self) == "split\n")
            // Everything it read came through the relay, and it read most of it.
            #expect(session.bytesReceived > 1000 && Int(session.bytesReceived) <= relayed.total)
        }
        while !fromServer.isFinished || !toServer.isFinished { Thread.sleep(forTimeInterval: 0.01) }
    }
}
