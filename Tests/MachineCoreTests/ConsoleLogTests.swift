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

@Suite struct PathsTests {
    @Test func eachHomeHasItsOwnShortStableID() {
        let first = Paths(environment: ["MACHINE_HOME": "/home/ada/.machine"])
        let second = Paths(environment: ["MACHINE_HOME": "/home/ada/src/machine/.e2e-home"])
        #expect(first.homeID == Paths(environment: ["MACHINE_HOME": "/home/ada/.machine/"]).homeID)
        #expect(first.homeID != second.homeID)
        #expect(first.homeID.count == 8 && first.homeID.allSatisfy(\.isHexDigit))
        #expect(MachineName.domainName("default", homeID: first.homeID) == "machine-default-\(first.homeID)")
    }

    @Test func homeAndCacheFollowTheEnvironment() {
        let defaults = Paths(environment: ["HOME": "/home/ada"])
        #expect(defaults.home.path == "/home/ada/.machine")
        #expect(defaults.cache.path == "/home/ada/.machine/cache")
        let custom = Paths(environment: ["HOME": "/home/ada", "MACHINE_HOME": "/m", "MACHINE_CACHE": "/c"])
        #expect(custom.home.path == "/m")
        #expect(custom.images.path == "/c/images")
        #expect(custom.engineBundles.path == "/c/engine")
    }
}

@Suite struct ManifestTests {
    @Test func imageManifestIsReadAndBadOneNamesTheFix() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("img-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let manifest = """
            {"key": "abc", "kernel": "6.1.0-57-amd64", "built": "2026-11-29T00:00:00Z",
             "packages": [{"name": "busybox-static", "version": "1:1.35.0-4", "sha256": "00"}],
             "artefacts": {"machine.iso": {"size": 20971520, "sha256": "11"}}}
            """
        try manifest.write(to: folder.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)
        try "console=ttyS0 quiet\n".write(to: folder.appendingPathComponent("cmdline"), atomically: true, encoding: .utf8)
        let image = try GuestImage(folder: folder)
        #expect(image.manifest.kernel == "6.1.0-57-amd64")
        #expect(image.manifest.packages.first?.version == "1:1.35.0-4")
        #expect(image.manifest.artefacts["machine.iso"]?.size == 20971520)
        #expect(image.kernelCommandLine == "console=ttyS0 quiet")

        try "{not json".write(to: folder.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)
        do {
            _ = try GuestImage(folder: folder)
            Issue.record("a broken manifest was accepted")
        } catch {
            #expect(error.hint?.contains("build again") == true)
        }
    }
}

@Suite struct HostKeyTests {
    @Test func knownHostsLineWithNewlineParsesToTheSameKey() {
        let key = HostKey(algorithm: "ssh-ed25519", base64: "AAAAC3NzaC1lZDI1NTE5AAAAIPas")
        #expect(HostKey(line: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPas\n") == key)
        #expect(HostKey(line: "ssh-ed25519\tAAAAC3NzaC1lZDI1NTE5AAAAIPas comment\r\n") == key)
        #expect(HostKey(line: "garbage") == nil)
    }
}
