import Foundation
@testable import MachineCore
import Testing

/// What `machine upgrade` shows between two builds: the Debian packages that differ.
@Suite struct UpgradePlanTests {
    func build(_ kind: String, key: String, packages: [String: String], in root: URL) throws -> URL {
        try TestHome.build(kind, key: key, packages: packages, in: root)
    }

    @Test func packagesThatChangeAreNamedWithOldAndNewVersionsAddedAndRemoved() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("upgrade-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let old = MachineBuilds(
            image: try GuestImage(folder: build("images", key: "i1", packages: ["busybox-static": "1:1.35.0-4", "linux-image-6.1.0-57-amd64": "6.1.153-1"], in: root)),
            engine: try EngineBundle(folder: build("engine", key: "e1", packages: ["docker.io": "20.10.24+dfsg1-1+b3", "libseccomp2": "2.5.4-1"], in: root)))
        let new = MachineBuilds(
            image: try GuestImage(folder: build("images", key: "i2", packages: ["busybox-static": "1:1.35.0-4", "linux-image-6.1.0-58-amd64": "6.1.158-1"], in: root)),
            engine: try EngineBundle(folder: build("engine", key: "e2", packages: ["docker.io": "20.10.24+dfsg1-1+deb12u1", "libseccomp2": "2.5.4-1"], in: root)))
        #expect(MachineBuilds.packageChanges(from: old, to: new) == [
            "docker.io 20.10.24+dfsg1-1+b3 -> 20.10.24+dfsg1-1+deb12u1",
            "linux-image-6.1.0-57-amd64 6.1.153-1 (removed)",
            "linux-image-6.1.0-58-amd64 6.1.158-1 (added)",
        ])
        #expect(MachineBuilds.packageChanges(from: old, to: old).isEmpty)
        #expect(!old.isSame(as: new) && old.isSame(as: old))
    }
}
