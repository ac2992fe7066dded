import Foundation
import HostOS
import SSH
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// An SSH session to a server reached through another host with the user's own OpenSSH
/// (`ssh -W`), as the agent will reach a guest on a remote libvirt host. Here both hops are
/// the same local sshd.
@Suite(.serialized) struct JumpTests {
    func jump(_ server: LocalSSHD, knownHosts: String) -> [String] {
        ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=\(knownHosts)",
         "-i", server.clientKey.path, "-p", String(server.port), "-W", "127.0.0.1:\(server.port)", "\(server.user)@127.0.0.1"]
    }

    @Test func aSessionThroughTheJumpHostRunsCommands() throws {
        let server = try LocalSSHD()
        let knownHosts = server.folder.appendingPathComponent("known_hosts").path
        try "[127.0.0.1]:\(server.port) \(server.hostKeyPublic)".write(toFile: knownHosts, atomically: true, encoding: .utf8)
        let errors = server.folder.appendingPathComponent("jump.log").path
        let fd = try CommandSocket.start(jump(server, knownHosts: knownHosts), errors: errors)
        let session = try Session(socket: fd, peer: "127.0.0.1:\(server.port) through 127.0.0.1")
        try session.verifyHostKey(pinned: try #require(HostKey(line: server.hostKeyPublic)))
        try session.authenticate(user: server.user, privateKeyPath: server.clientKey.path)
        let result = try session.run("echo through the jump")
        #expect(result.status == 0)
        #expect(String(decoding: result.output, as: UTF8.self) == "through the jump\n")
    }

    @Test func aJumpHostWithAnUnknownKeyIsRefusedAndSaysSo() throws {
        let server = try LocalSSHD()
        let knownHosts = server.folder.appendingPathComponent("known_hosts").path
        try "".write(toFile: knownHosts, atomically: true, encoding: .utf8)
        let errors = server.folder.appendingPathComponent("jump.log").path
        let fd = try CommandSocket.start(jump(server, knownHosts: knownHosts), errors: errors)
        do {
            _ = try Session(socket: fd, peer: "127.0.0.1:\(server.port) through 127.0.0.1", timeout: 10)
            Issue.record("a session through a jump host whose key is unknown was made")
        } catch {
            // OpenSSH ends at once; its own words say why.
            let said = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
            #expect(said.contains("Host key verification failed"), "\(said)")
        }
    }
}
