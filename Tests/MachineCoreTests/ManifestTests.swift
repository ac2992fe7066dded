import Foundation
import MachineCore
import SSH
import Testing

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
