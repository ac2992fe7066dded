import Foundation
@testable import MachineCore
import Testing

/// The systemd unit `machine autostart on` writes: where it goes for root and for a user, what
/// it runs, and that it acts on the home and cache of the command that wrote it.
@Suite struct AutostartServiceTests {
    let paths = Paths(environment: ["HOME": "/home/ann", "MACHINE_HOME": "/srv/my machines"])

    @Test func rootsUnitStartsAtBootAfterLibvirt() {
        let service = AutostartService(scope: .system, paths: paths, executable: "/usr/bin/machine",
                                       environment: ["MACHINE_HOME": "/srv/my machines", "MACHINE_CACHE": "/var/cache/m"], manual: true)
        #expect(service.unitFile.path == "/etc/systemd/system/machine-autostart-\(paths.homeID).service")
        let lines = service.unitText.split(separator: "\n").map(String.init)
        #expect(lines.contains("ExecStart=\"/usr/bin/machine\" autostart --start"))
        #expect(lines.contains("Environment=\"MACHINE_CACHE=/var/cache/m\""))
        #expect(lines.contains("Environment=\"MACHINE_HOME=/srv/my machines\""))
        #expect(lines.contains("After=libvirtd.service virtlogd.service network.target"))
        #expect(lines.contains("WantedBy=multi-user.target"))
        #expect(lines.contains("Documentation=man:machine(1)"))
        // The agents it starts must outlive the oneshot command.
        #expect(lines.contains("Type=oneshot") && lines.contains("KillMode=process") && lines.contains("RemainAfterExit=yes"))
    }

    @Test func aUsersUnitStartsAtTheirLogin() {
        let service = AutostartService(scope: .user(home: URL(fileURLWithPath: "/home/ann")), paths: paths,
                                       executable: "/opt/with \"quotes\"/machine")
        #expect(service.unitFile.path == "/home/ann/.config/systemd/user/machine-autostart-\(paths.homeID).service")
        let lines = service.unitText.split(separator: "\n").map(String.init)
        #expect(lines.contains("WantedBy=default.target"))
        #expect(lines.contains("ExecStart=\"/opt/with \\\"quotes\\\"/machine\" autostart --start"))
        #expect(!lines.contains { $0.hasPrefix("After=") || $0.hasPrefix("Environment=") || $0.hasPrefix("Documentation=") })
    }

    @Test func twoHomesGetTwoUnits() {
        let other = Paths(environment: ["HOME": "/home/ann"])
        #expect(AutostartService(scope: .system, paths: paths, executable: "m").unitName
                != AutostartService(scope: .system, paths: other, executable: "m").unitName)
    }

    /// `autostart off` of the last marked machine, or its `rm`, takes the unit along; while
    /// one is marked, it stays. (Where systemd runs, install and removal would ask the
    /// user's systemd about a unit in a folder it does not read.)
    @Test(.enabled(if: !AutostartService.systemdRuns)) func theUnitGoesWithTheLastMarkedMachine() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("autostart-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: home) }
        let service = AutostartService(scope: .user(home: home), paths: paths, executable: "/usr/bin/machine")
        #expect(try service.removeUnlessMarked([]).isEmpty)
        _ = try service.install()
        #expect(FileManager.default.fileExists(atPath: service.unitFile.path))
        #expect(try service.removeUnlessMarked(["dev"]).isEmpty)
        #expect(FileManager.default.fileExists(atPath: service.unitFile.path))
        let said = try service.removeUnlessMarked([])
        #expect(said.last == "removed \(service.unitFile.path): no machine of /srv/my machines is marked for autostart")
        #expect(!FileManager.default.fileExists(atPath: service.unitFile.path))
    }
}
