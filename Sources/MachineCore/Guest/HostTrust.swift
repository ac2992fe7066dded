import FoundationEssentials
import HostOS

/// What the engine in the guest should trust and go through as the host does: the host's CA
/// certificates and ~/.docker/certs.d (for pulls and pushes through a TLS-inspecting gateway or
/// to a registry behind a private CA), and the proxy variables of the user's environment.
/// The certificates travel in the seed, so they are refreshed at every boot; the guest puts
/// them where dockerd looks (boot.d/58-host-trust.sh). The guest has no CA bundle of its own.
public enum HostTrust {
    /// The host's CA bundle, which update-ca-certificates writes.
    public static let hostBundle = "/etc/ssl/certs/ca-certificates.crt"
    /// Where local CAs are put before update-ca-certificates runs: added too, so a CA copied
    /// there counts even before the bundle was made anew.
    public static let localCAFolder = "/usr/local/share/ca-certificates"
    /// A file larger than this in certs.d is no certificate; it is left out.
    static let largestFile = 1 << 20

    /// The seed's entries (relative path, bytes): GuestContract.caBundleSeedFile, and the
    /// files of `dockerConfig`/certs.d under GuestContract.certsDSeedFolder.
    public static func seedFiles(dockerConfig: URL, hostBundle: String = hostBundle, localCAFolder: String = localCAFolder) -> [(String, Data)] {
        var files: [(String, Data)] = []
        var bundle = (try? Data(contentsOf: URL(fileURLWithPath: hostBundle))) ?? Data()
        for url in regularFiles(under: URL(fileURLWithPath: localCAFolder)) where url.pathExtension == "crt" {
            guard let pem = try? Data(contentsOf: url), pem.count < largestFile, !bundle.contains(pem) else { continue }
            if bundle.last.map({ $0 != UInt8(ascii: "\n") }) == true { bundle.append(UInt8(ascii: "\n")) }
            bundle.append(pem)
        }
        if !bundle.isEmpty { files.append((GuestContract.caBundleSeedFile, bundle)) }
        let certsD = dockerConfig.appendingPathComponent("certs.d")
        for url in regularFiles(under: certsD) {
            let relative = String(url.path.dropFirst(certsD.path.count + 1))
            // One folder per registry (HOST[:PORT]), its files directly inside, as dockerd reads them.
            let parts = relative.split(separator: "/")
            guard parts.count == 2, !parts.contains(where: { $0.hasPrefix(".") }),
                  let data = try? Data(contentsOf: url), data.count < largestFile else { continue }
            files.append((GuestContract.certsDSeedFolder + "/" + relative, data))
        }
        return files
    }

    static func regularFiles(under folder: URL) -> [URL] {
        var found: [URL] = []
        for path in (try? FileManager.default.subpathsOfDirectory(atPath: folder.path)) ?? [] {
            let url = folder.appendingPathComponent(path)
            // Files themselves, not links to them (as the enumerator with isRegularFileKey had it).
            if HostPath.isRegularFile(url.path, followingLinks: false) { found.append(url) }
        }
        return found.sorted { $0.path < $1.path }
    }

    /// The proxy variables of `environment` for dockerd (both spellings, as programs read
    /// either), with a proxy on the host's loopback named as the guest reaches it:
    /// http://127.0.0.1:3128 becomes http://host.docker.internal:3128.
    public static func proxyEnvironment(_ environment: [String: String]) -> [String] {
        let keys = ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"]
        return keys.compactMap { key in
            guard let value = environment[key]?.trimmed(), !value.isEmpty, !value.contains("\n") else { return nil }
            return "\(key)=\(key.lowercased() == "no_proxy" ? value : guestView(ofProxy: value))"
        }
    }

    /// A proxy URL as the guest must say it: loopback hosts are the host's, through its name.
    static func guestView(ofProxy value: String) -> String {
        guard var components = URLComponents(string: value.contains("://") ? value : "http://" + value),
              let host = components.host?.lowercased(),
              ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host) || host.hasPrefix("127.")
        else { return value }
        components.host = GuestContract.hostNames[0]
        let rewritten = components.string ?? value
        return value.contains("://") ? rewritten : String(rewritten.dropFirst("http://".count))
    }

    /// `settings` with the proxy variables of `environment` for every key the user did not
    /// set with --engine-env; what was added or changed, as "KEY=VALUE".
    public static func addingProxies(from environment: [String: String], to settings: EngineSettings,
                                     keepingKeysOf userGiven: [String]) -> (EngineSettings, changed: [String]) {
        func key(_ entry: String) -> String { String(entry.prefix { $0 != "=" }) }
        let given = Set(userGiven.map(key))
        var result = settings
        var changed: [String] = []
        for entry in proxyEnvironment(environment) where !given.contains(key(entry)) {
            if let index = result.environment.firstIndex(where: { key($0) == key(entry) }) {
                guard result.environment[index] != entry else { continue }
                result.environment[index] = entry
            } else {
                result.environment.append(entry)
            }
            changed.append(entry)
        }
        return (result, changed)
    }
}
