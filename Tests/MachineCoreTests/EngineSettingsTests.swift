import Foundation
import MachineCore
import Testing

struct EngineSettingsTests {
    @Test func daemonJSONCarriesTheRegistriesAndOverlay2() throws {
        let settings = try EngineSettings(environment: ["HTTP_PROXY=http://proxy:3128"],
                                          registryMirrors: ["https://mirror.example.com"],
                                          insecureRegistries: ["registry.local:5000"]).validated()
        let json = try #require(try JSONSerialization.jsonObject(with: settings.daemonJSON()) as? [String: Any])
        #expect(json["storage-driver"] as? String == "overlay2")
        #expect(json["registry-mirrors"] as? [String] == ["https://mirror.example.com"])
        #expect(json["insecure-registries"] as? [String] == ["registry.local:5000"])
        #expect(String(decoding: settings.environmentFile(), as: UTF8.self) == "HTTP_PROXY=http://proxy:3128\n")
    }

    @Test(arguments: ["NOEQUALS", "=value", "1ABC=x", "A B=x", "A=x\ny=z"])
    func badEnvironmentEntriesAreRefused(_ entry: String) {
        #expect(throws: MachineError.self) { try EngineSettings(environment: [entry]).validated() }
    }

    @Test func badRegistriesAreRefused() {
        #expect(throws: MachineError.self) { try EngineSettings(registryMirrors: ["mirror.example.com"]).validated() }
        #expect(throws: MachineError.self) { try EngineSettings(insecureRegistries: ["http://registry.local"]).validated() }
    }

    @Test func configsWithoutEngineSettingsStillLoad() throws {
        let old = #"{"name":"old","cpus":2,"memoryMiB":1024,"diskGiB":20,"sshPort":2222,"accel":"auto","created":"2026-11-29T12:00:00Z"}"#
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString).json")
        try Data(old.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let config = try MachineConfig.load(url)
        #expect(config.engine == EngineSettings())
    }
}
