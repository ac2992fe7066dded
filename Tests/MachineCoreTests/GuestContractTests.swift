import Foundation
#if canImport(Glibc)
import Glibc
#endif
import MachineCore
import Testing

/// Holds GuestContract against the guest's scripts: each value must appear in the script that
/// uses it, in the form it is used there. A script that changes one fails here.
@Suite struct GuestContractTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func script(_ path: String) throws -> String {
        try String(contentsOf: Self.repo.appendingPathComponent(path), encoding: .utf8)
    }

    static let guest = "iso/rootfs/usr/lib/machine/"

    static let said: [(String, String)] = [
        (guest + "boot.d/40-data-disk.sh", "disk_by_serial \(GuestContract.dataDiskSerial)"),
        (guest + "boot.d/50-seed.sh", "disk_by_serial \(GuestContract.seedDiskSerial)"),
        (guest + "boot.d/45-engine-disk.sh", "disk_by_serial \(GuestContract.engineDiskSerial)"),
        (guest + "boot.d/55-engine-settings.sh", "for f in \(GuestContract.engineDaemonSeedFile) \(GuestContract.engineEnvironmentSeedFile) \(GuestContract.engineTLSFiles.joined(separator: " ")); do"),
        ("provisioning/guest/service", "for f in \(GuestContract.engineDaemonSeedFile) \(GuestContract.engineEnvironmentSeedFile) \(GuestContract.engineTLSFiles.joined(separator: " ")); do"),
        ("provisioning/guest/service", "--host tcp://127.0.0.1:\(GuestContract.engineTLSPort) --tlsverify --tlscacert \"$ENGINE_HOME/\(GuestContract.engineTLSFiles[0])\""),
        ("provisioning/guest/service", "--tlscert \"$ENGINE_HOME/\(GuestContract.engineTLSFiles[1])\" --tlskey \"$ENGINE_HOME/\(GuestContract.engineTLSFiles[2])\""),
        (guest + "ssh-host-key", "echo \"\(GuestContract.hostKeyMarker) "),
        (guest + "ssh-host-key", "echo \"\(GuestContract.hostKeyFingerprintMarker) "),
        (guest + "sshd-run", "log \"\(GuestContract.sshReadyStep)\""),
        (guest + "lib.sh", "machine: "),
        (guest + "ssh-port-run", "name=${1:-\(GuestContract.sshPortName)}\n"),
        (guest + "ssh-port-run", "guest_port=${2:-\(GuestContract.agentInputGuestPort)}\n"),
        ("iso/rootfs/etc/inittab", "ssh-port-run \(GuestContract.sshPortName) \(GuestContract.agentInputGuestPort)\n"),
        ("iso/rootfs/etc/inittab", "ssh-port-run \(GuestContract.portsPortName) \(GuestContract.portsInputGuestPort)\n"),
        (guest + "ssh-port-guard", "guest_ports=\"\(GuestContract.agentInputGuestPort) \(GuestContract.portsInputGuestPort)\"\n"),
        (guest + "ssh-port-guard", "\"$SEED/\(GuestContract.agentInputPortSeedFile)\""),
        (guest + "ssh-port-session", "\"\(GuestContract.syncLine) \"*)"),
        (guest + "ssh-port-session", "printf '\(GuestContract.readyLine) %s\\n'"),
        (guest + "lib.sh", "ENGINE_HOME=\(GuestContract.engineHome)\n"),
        ("provisioning/build-bundle.sh", "--set-rpath \(GuestContract.engineHome)/current/lib"),
        ("provisioning/guest/service", "echo \(GuestContract.settingsChanged)\n"),
        ("provisioning/guest/service", "echo \(GuestContract.settingsUnchanged)\n"),
        (guest + "boot.d/57-host-network.sh", "host_addr=\(GuestContract.hostAddress)\n"),
        (guest + "boot.d/57-host-network.sh", "loopback_alias=\(GuestContract.loopbackAliasAddress)\n"),
        (guest + "boot.d/57-host-network.sh", "printf '%s \(GuestContract.hostNames.joined(separator: " "))\\n' \"$host_addr\""),
        (guest + "boot.d/57-host-network.sh", "\"$SEED/\(GuestContract.hostAccessSeedFile)\""),
        (guest + "boot.d/57-host-network.sh", "\"$SEED/\(GuestContract.hostResolverPortSeedFile)\""),
        (guest + "boot.d/30-network.sh", "ip addr add \(GuestContract.guestAddress)/24 dev eth0"),
        (guest + "boot.d/58-host-trust.sh", "cp \"$SEED/\(GuestContract.caBundleSeedFile)\" /etc/ssl/certs/ca-certificates.crt"),
        (guest + "boot.d/58-host-trust.sh", "cp -R \"$SEED/\(GuestContract.certsDSeedFolder)\" /etc/docker/certs.d"),
        (guest + "boot.d/50-seed.sh", "cp \"$SEED/\(GuestContract.authorizedKeysSeedFile)\" /etc/ssh/authorized_keys/root"),
        (guest + "boot.d/50-seed.sh", "hostname \"$(head -n 1 \"$SEED/\(GuestContract.hostnameSeedFile)\")\""),
        (guest + "boot.d/70-shares.sh", "while IFS=\"$tab\" read -r \(GuestContract.mountsFields.joined(separator: " ")); do"),
        (guest + "boot.d/70-shares.sh", "done <\"$SEED/\(GuestContract.mountsSeedFile)\""),
        (guest + "boot.d/70-shares.sh", "done <\"$SEED/\(GuestContract.hiddenSeedFile)\""),
        ("iso/rootfs" + GuestContract.shareEventsCommand, "exit \(GuestContract.shareEventsUnsupportedStatus); }"),
        ("iso/rootfs" + GuestContract.shareEventsCommand, "exec cat >/proc/machine-notify"),
        ("iso/notify/machine_notify.c", "strcmp(word + length, \"\(GuestContract.notifyDirectorySuffix)\") == 0"),
        ("iso/notify/machine_notify.c", "char *op = strsep(&line, \" \");\n\tchar *cookie_text = strsep(&line, \" \");\n\tchar *path = line,"),
        (guest + "lib.sh", "SEED=\(GuestContract.seedFolder)\n"),
        ("provisioning/build-bundle.sh", "\"$RECIPE/guest/platforms\" \"$bundle/\""),
        ("provisioning/guest/platforms", "if [ -s \"$SEED/\(GuestContract.platformsSeedFile)\" ]; then SETTING=$(cat \"$SEED/\(GuestContract.platformsSeedFile)\")"),
        ("provisioning/guest/platforms", "printf '\(GuestContract.platformsEmulationWord)\\t\(GuestContract.platformsEmulationStates[0])\\n'"),
        ("provisioning/guest/platforms", "printf '\(GuestContract.platformsEmulationWord)\\t\(GuestContract.platformsEmulationStates[1])\\n'"),
        ("provisioning/guest/platforms", "printf '\(GuestContract.platformsEmulationWord)\\t\(GuestContract.platformsEmulationStates[2])\\t%s\\n'"),
        ("provisioning/guest/platforms", "printf '%s\\t\(GuestContract.platformWorks)\\n' \"$platform\""),
        ("provisioning/guest/platforms", "printf '%s\\t\(GuestContract.platformFailing)\\t"),
    ]
    static let notifyTable: [(String, String)] = GuestContract.notifyOperations.map { ("iso/notify/machine_notify.c", "{ \"\($0)\", FS_") }

    @Test(arguments: said + notifyTable)
    func theScriptSaysTheSame(path: String, expected: String) throws {
        #expect(try script(path).contains(expected), "\(path) no longer has \(expected.debugDescription)")
    }

    @Test func theDomainDefinitionUsesTheContract() {
        let xml = DomainDefinition(
            name: "m", memoryMiB: 512, cpus: 1, accelerator: .tcg, boot: .iso("/x.iso"), dataDisk: "/d", seed: "/s",
            engineDisk: "/e", consoleLog: "/c", sshPort: 1,
            agentLinks: [.init(role: .engine, socket: "/p", inputPort: 2), .init(role: .ports, socket: "/q", inputPort: 3)]).xml()
        #expect(xml.contains("<serial>\(GuestContract.dataDiskSerial)</serial>"))
        #expect(xml.contains("<serial>\(GuestContract.seedDiskSerial)</serial>"))
        #expect(xml.contains("<serial>\(GuestContract.engineDiskSerial)</serial>"))
        #expect(xml.contains("name='\(GuestContract.sshPortName)'"))
        #expect(xml.contains("-:\(GuestContract.agentInputGuestPort)"))
        #expect(xml.contains("name='\(GuestContract.portsPortName)'"))
        #expect(xml.contains("-:\(GuestContract.portsInputGuestPort)"))
    }

    /// The platforms the host offers (`--platforms`, inspect) are the ones the engine's recipe
    /// carries emulators for, in its order.
    @Test func theEmulatedPlatformsAreTheRecipes() throws {
        let listed = try script("provisioning/platforms.txt").split(separator: "\n")
            .map { $0.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0] }
            .compactMap { $0.split(separator: " ").first.map(String.init) }
        #expect(listed == GuestContract.emulatedPlatforms)
        #expect(GuestContract.platformsCheckCommand == GuestContract.engineHome + "/current/platforms check")
    }

    @Test func theMountsLineHasTheContractsFieldsInOrder() {
        let device = SharedFolder(tag: "share0", share: Share(hostPath: "/home/ada", guestPath: "/src", readOnly: true), transport: .ninep)
        let fields = Shares.seedMounts([device]).dropLast().split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        #expect(fields.count == GuestContract.mountsFields.count)
        #expect(Dictionary(uniqueKeysWithValues: zip(GuestContract.mountsFields, fields)) == ["tag": "share0", "path": "/src", "type": "9p", "mode": "ro"])
    }

    /// What the host writes is what machine_notify.c parses: `OPERATION COOKIE PATH`, each
    /// operation a word of the contract (and of the module's table, checked above).
    @Test(arguments: [IN_CREATE, IN_DELETE, IN_MODIFY, IN_CLOSE_WRITE, IN_ATTRIB, IN_MOVED_FROM, IN_MOVED_TO])
    func theNotifyLineIsTheModules(mask: Int32) throws {
        let lines = ShareEventLines(shares: [Share(hostPath: "/home/ada", guestPath: "/src")])
        for isDir in [false, true] {
            let line = try #require(lines.line(mask: UInt32(mask) | (isDir ? UInt32(IN_ISDIR) : 0), cookie: 7, hostPath: "/home/ada/a b"))
            let words = line.dropLast().split(separator: " ", maxSplits: 2).map(String.init)
            #expect(words.count == 3 && words[1] == "7" && words[2] == "/src/a b" && line.hasSuffix("\n"))
            let operation = isDir ? String(words[0].dropLast(GuestContract.notifyDirectorySuffix.count)) : words[0]
            #expect(GuestContract.notifyOperations.contains(operation), "\(words[0]) is no word of machine_notify")
            #expect(words[0].hasSuffix(GuestContract.notifyDirectorySuffix) == isDir)
        }
    }
}
