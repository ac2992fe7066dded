import Foundation
import MachineCore
import SSH
import Testing

@Suite struct HostKeyTests {
    @Test func knownHostsLineWithNewlineParsesToTheSameKey() {
        let key = HostKey(algorithm: "ssh-ed25519", base64: "AAAAC3NzaC1lZDI1NTE5AAAAIPas")
        #expect(HostKey(line: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPas\n") == key)
        #expect(HostKey(line: "ssh-ed25519\tAAAAC3NzaC1lZDI1NTE5AAAAIPas comment\r\n") == key)
        #expect(HostKey(line: "garbage") == nil)
    }
}
