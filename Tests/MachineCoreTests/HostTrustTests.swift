import Foundation
import MachineCore
import Testing

@Suite struct HostTrustTests {
    @Test func aProxyOnTheHostsLoopbackIsNamedAsTheGuestReachesIt() {
        let proxies = HostTrust.proxyEnvironment([
            "HTTP_PROXY": "http://127.0.0.1:3128", "https_proxy": "localhost:3129", "NO_PROXY": "localhost,.corp",
            "HTTPS_PROXY": "http://user:pw@proxy.corp:8080", "PATH": "/bin",
        ])
        #expect(proxies == [
            "HTTP_PROXY=http://host.docker.internal:3128", "HTTPS_PROXY=http://user:pw@proxy.corp:8080",
            "NO_PROXY=localhost,.corp", "https_proxy=host.docker.internal:3129",
        ])
    }

    @Test func whatTheUserSetWithEngineEnvWins() {
        let base = EngineSettings(environment: ["HTTP_PROXY=http://mine:1", "FOO=bar"])
        let (settings, taken) = HostTrust.addingProxies(from: ["HTTP_PROXY": "http://env:2", "HTTPS_PROXY": "http://env:3"], to: base,
                                                        keepingKeysOf: ["HTTP_PROXY=http://mine:1"])
        #expect(settings.environment == ["HTTP_PROXY=http://mine:1", "FOO=bar", "HTTPS_PROXY=http://env:3"])
        #expect(taken == ["HTTPS_PROXY=http://env:3"])
        // The same environment again changes nothing (no restart of the engine for it).
        let (again, takenAgain) = HostTrust.addingProxies(from: ["HTTPS_PROXY": "http://env:3"], to: settings, keepingKeysOf: [])
        #expect(again == settings && takenAgain.isEmpty)
    }

    @Test func theSeedCarriesTheHostsCAsAndCertsD() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("trust-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let fm = FileManager.default
        let bundle = folder.appendingPathComponent("ca-certificates.crt")
        let local = folder.appendingPathComponent("local/extra")
        let docker = folder.appendingPathComponent("docker")
        try fm.createDirectory(at: local, withIntermediateDirectories: true)
        try fm.createDirectory(at: docker.appendingPathComponent("certs.d/registry.corp:5000"), withIntermediateDirectories: true)
        try "BUNDLE\n".write(to: bundle, atomically: true, encoding: .utf8)
        // One CA already in the bundle (update-ca-certificates ran), one not yet.
        try "BUNDLE\n".write(to: local.appendingPathComponent("old.crt"), atomically: true, encoding: .utf8)
        try "NEW CA\n".write(to: local.appendingPathComponent("new.crt"), atomically: true, encoding: .utf8)
        try "not a certificate".write(to: local.appendingPathComponent("README"), atomically: true, encoding: .utf8)
        try "REGISTRY CA\n".write(to: docker.appendingPathComponent("certs.d/registry.corp:5000/ca.crt"), atomically: true, encoding: .utf8)
        try "stray".write(to: docker.appendingPathComponent("certs.d/stray.crt"), atomically: true, encoding: .utf8)
        let files = HostTrust.seedFiles(dockerConfig: docker, hostBundle: bundle.path, localCAFolder: folder.appendingPathComponent("local").path)
        #expect(files.map(\.0) == [GuestContract.caBundleSeedFile, "\(GuestContract.certsDSeedFolder)/registry.corp:5000/ca.crt"])
        #expect(String(decoding: files[0].1, as: UTF8.self) == "BUNDLE\nNEW CA\n")
        // Nothing at all on a host without them: no empty bundle that would hide none.
        #expect(HostTrust.seedFiles(dockerConfig: folder.appendingPathComponent("none"), hostBundle: "/nonexistent", localCAFolder: "/nonexistent").isEmpty)
    }
}
