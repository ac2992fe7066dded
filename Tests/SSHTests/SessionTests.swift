import Foundation
import SSH
import Testing

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
}
