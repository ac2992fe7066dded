import Foundation
@testable import MachineCore
import Testing

/// What `machine upgrade` shows between two builds: the Debian packages that differ.
@Suite struct UpgradePlanTests {
    /// A cache folder named `key` holding a manifest of `kind` with these packages.
    func build(_ kind: String, key: String, packages: [String: String], in root: URL) throws -> URL {
        let folder = root.appendingPathComponent(kind).appendingPathComponent(key)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let list = packages.sorted { $0.key < $1.key }.map { #"{"name": "\#($0.key)", "version": "\#($0.value)", "sha256": "00"}"# }
        let specific = kind == "images" ? #""kernel": "6.1.0-57-amd64""# : #""version": "20.10-\#(key)", "docker": "20.10""#
        let manifest = #"{"key": "\#(key)", \#(specific), "packages": [\#(list.joined(separator: ", "))], "artefacts": {}}"#
        try manifest.write(to: folder.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)
        return folder
    }

    @Test func packagesThatChangeAreNamedWithOldAndNewVersionsAddedAndRemoved() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("upgrade-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let old = Machines.Builds(
            image: try GuestImage(folder: build("images", key: "i1", packages: ["busybox-static": "1:1.35.0-4", "linux-image-6.1.0-57-amd64": "6.1.153-1"], in: root)),
            engine: try EngineBundle(folder: build("engine", key: "e1", packages: ["docker.io": "20.10.24+dfsg1-1+b3", "libseccomp2": "2.5.4-1"], in: root)))
        let new = Machines.Builds(
            image: try GuestImage(folder: build("images", key: "i2", packages: ["busybox-static": "1:1.35.0-4", "linux-image-6.1.0-58-amd64": "6.1.158-1"], in: root)),
            engine: try EngineBundle(folder: build("engine", key: "e2", packages: ["docker.io": "20.10.24+dfsg1-1+deb12u1", "libseccomp2": "2.5.4-1"], in: root)))
        #expect(Machines.packageChanges(from: old, to: new) == [
            "docker.io 20.10.24+dfsg1-1+b3 -> 20.10.24+dfsg1-1+deb12u1",
            "linux-image-6.1.0-57-amd64 6.1.153-1 (removed)",
            "linux-image-6.1.0-58-amd64 6.1.158-1 (added)",
        ])
        #expect(Machines.packageChanges(from: old, to: old).isEmpty)
        #expect(!old.isSame(as: new) && old.isSame(as: old))
    }
}
