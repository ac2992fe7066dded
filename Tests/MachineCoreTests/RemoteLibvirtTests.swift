import MachineCore
import Testing

@Suite struct RemoteLibvirtTests {
    @Test func daemonsOnThisHostAreNotRemote() throws {
        for uri in ["qemu:///system", "qemu:///session", "test:///default", "qemu+unix:///system"] {
            #expect(try RemoteLibvirt(uri: uri) == nil, "\(uri)")
        }
    }

    @Test func anSSHURIGivesOpenSSHItsUserPortKeyAndKnownHosts() throws {
        let remote = try #require(try RemoteLibvirt(uri: "qemu+ssh://dev@build.example:2222/system?keyfile=/k/id&known_hosts=/k/known"))
        #expect(remote.host == "build.example" && remote.user == "dev" && remote.port == 2222)
        #expect(remote.destination == "dev@build.example:2222")
        #expect(remote.jump(toLoopbackPort: 40022) == [
            "ssh", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=15", "-p", "2222", "-l", "dev", "-i", "/k/id",
            "-o", "UserKnownHostsFile=/k/known", "-o", "StrictHostKeyChecking=yes", "-W", "127.0.0.1:40022", "--", "build.example"])
        #expect(remote.loginCommand == "ssh -p 2222 -i /k/id -o UserKnownHostsFile=/k/known dev@build.example")
        // The bare form leaves user, port, key and known_hosts to the user's OpenSSH config.
        let bare = try #require(try RemoteLibvirt(uri: "qemu+ssh://box/system"))
        #expect(bare.jump(toLoopbackPort: 22) == [
            "ssh", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=15", "-o", "StrictHostKeyChecking=yes", "-W", "127.0.0.1:22", "--", "box"])
        #expect(bare.loginCommand == "ssh box")
        #expect(try RemoteLibvirt(uri: "qemu+libssh2://box/system?no_verify=1")?.verifiesHostKey == false)
    }

    @Test func transportsMachineCannotFollowAreRefusedWithTheFix() {
        for uri in ["qemu+tcp://box/system", "qemu+tls://box/system", "qemu://box/system"] {
            do {
                _ = try RemoteLibvirt(uri: uri)
                Issue.record("\(uri) was taken")
            } catch {
                #expect(error.message.contains("only over SSH"), "\(error.message)")
                #expect(error.hint?.contains("qemu+ssh://") == true)
            }
        }
        #expect(throws: MachineError.self) { try RemoteLibvirt(uri: "qemu+ssh:///system") }
    }

    @Test func aRemoteSessionDaemonIsRefusedWithTheSystemOne() {
        do {
            _ = try RemoteLibvirt(uri: "qemu+ssh://dev@box/session")
            Issue.record("a remote session daemon was taken")
        } catch {
            #expect(error.message.contains("system daemon") && error.message.contains("/session"), "\(error.message)")
            #expect(error.hint?.contains("qemu+ssh://user@box/system") == true)
        }
    }
}
