import Foundation
import MachineCore
import SSH
import Testing

@Suite struct ConsoleLogTests {
    // As the serial console shows it: BIOS escapes, CR LF line ends, two boots in a row.
    let console = """
        \u{1b}c\u{1b}[?7lSeaBIOS (version 1.16.2)\r
        Booting from ROM..[2.56] machine: filesystems mounted\r
        [3.86] machine: ssh host key generated\r
        machine-host-key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOLDKEY\r
        machine-host-key-fingerprint: SHA256:old\r
        [4.09] machine: sshd ready\r
        Booting from ROM..[2.41] machine: filesystems mounted\r
        machine-host-key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINEWKEY\r
        machine-host-key-fingerprint: SHA256:new\r
        [3.95] machine: sshd ready\r
        """

    @Test func aLogReadInsideACharacterStillGivesTheKey() throws {
        // QEMU was writing "ü" of a share's path when the log was read: half of it is there.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("console-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: url) }
        let half = Data((console + "\n[5.33] machine: hidden: /home/u/proj \u{fc}").utf8).dropLast()
        try half.write(to: url)
        #expect(String(data: half, encoding: .utf8) == nil)
        #expect(ConsoleLog.hostKey(in: ConsoleLog.read(url)) == HostKey(algorithm: "ssh-ed25519", base64: "AAAAC3NzaC1lZDI1NTE5AAAAINEWKEY"))
    }

    @Test func latestHostKeyWins() {
        #expect(ConsoleLog.hostKey(in: console) == HostKey(algorithm: "ssh-ed25519", base64: "AAAAC3NzaC1lZDI1NTE5AAAAINEWKEY"))
        #expect(ConsoleLog.hostKeyFingerprint(in: console) == "SHA256:new")
    }

    @Test func stepUptimes() {
        #expect(ConsoleLog.uptime(ofStep: "sshd ready", in: console) == 3.95)
        #expect(ConsoleLog.uptime(ofStep: "filesystems mounted", in: console) == 2.41)
        #expect(ConsoleLog.uptime(ofStep: "engine socket ready", in: console) == nil)
    }

    @Test func noKeyBeforeTheGuestPrintsOne() {
        #expect(ConsoleLog.hostKey(in: "SeaBIOS\r\nBooting from ROM..") == nil)
    }
}
