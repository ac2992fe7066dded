import Foundation
@testable import MachineCore

/// A home in a temporary folder with one machine, `dev`, whose config both copies hold (the
/// recorded one in memory, standing in for the domain's metadata), and a cache to make builds in.
final class TestHome {
    final class MemoryRecorder: ConfigRecorder {
        var copy: RecordedConfig?
        func recordedConfig(_ name: String) throws(MachineError) -> RecordedConfig? { copy }
        func record(config: MachineConfig, previous: MachineConfig?) throws(MachineError) {
            copy = RecordedConfig(config: config.encoded(), previous: previous?.encoded())
        }
    }

    let root = FileManager.default.temporaryDirectory.appendingPathComponent("home-\(UUID().uuidString)")
    let paths: Paths
    let store: MachineStore
    let recorder = MemoryRecorder()
    var lines: [String] = []
    let first: MachineConfig

    init(_ config: MachineConfig = MachineConfig(name: "dev", sshPort: 42022, created: Date(timeIntervalSince1970: 1_800_000_000))) throws {
        first = config
        paths = Paths(environment: ["MACHINE_HOME": root.path])
        store = MachineStore(paths: paths)
        try FileManager.default.createDirectory(at: store.files(config.name).folder, withIntermediateDirectories: true)
        try config.encoded().write(to: store.files(config.name).config)
        try recorder.record(config: config, previous: nil)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func copies(_ foreign: Machines.ForeignConfigChange = .refuse) -> ConfigCopies {
        ConfigCopies(store: store, recorder: recorder, foreignChange: foreign, progress: { [unowned self] in lines.append($0) })
    }

    func onDisk(_ name: String = "dev") throws -> MachineConfig { try MachineConfig.load(store.files(name).config) }

    /// A cache folder of `kind` ("images" or "engine") named `key`, with a manifest of these packages.
    @discardableResult
    static func build(_ kind: String, key: String, packages: [String: String], suite: String? = nil, in cache: URL) throws -> URL {
        let folder = cache.appendingPathComponent(kind).appendingPathComponent(key)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let list = packages.sorted { $0.key < $1.key }.map { #"{"name": "\#($0.key)", "version": "\#($0.value)", "sha256": "00"}"# }
        let specific = kind == "images" ? #""kernel": "6.1.0-57-amd64""# : #""version": "20.10-\#(key)", "docker": "20.10""#
        let suiteField = suite.map { #""suite": "\#($0)", "# } ?? ""
        let manifest = #"{"key": "\#(key)", \#(suiteField)\#(specific), "packages": [\#(list.joined(separator: ", "))], "artefacts": {}}"#
        try manifest.write(to: folder.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)
        return folder
    }

    /// An image and an engine bundle in this home's cache, named `image` and `engine`.
    /// Builds without a suite are bookworm's, as those made before there was a choice.
    func builds(image: String, engine: String, docker: String = "20.10.24", suite: String? = nil) throws -> MachineBuilds {
        MachineBuilds(image: try GuestImage(folder: Self.build("images", key: image, packages: ["busybox-static": "1:1.35.0-4"], suite: suite, in: paths.cache)),
                      engine: try EngineBundle(folder: Self.build("engine", key: engine, packages: ["docker.io": docker], suite: suite, in: paths.cache)))
    }
}
