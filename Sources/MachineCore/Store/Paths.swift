import FoundationEssentials

/// Where `machine` keeps its files. Every name inside these folders is defined here.
public struct Paths: Sendable {
    /// `$MACHINE_HOME`, default `~/.machine`: short, because a unix socket path inside it
    /// must stay under 108 bytes.
    public let home: URL
    /// Downloaded packages and built images and bundles (`$MACHINE_CACHE` overrides it).
    public let cache: URL

    /// The account's own home folder: `$HOME`, as the shell has it, else the password database's.
    public static func userHome(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        environment["HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) } ?? FileManager.default.homeDirectoryForCurrentUser
    }

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let homeFolder = Self.userHome(environment: environment)
        // An empty variable means unset, as in the shell's ${VAR:-default}: an empty path
        // would make the current folder the home.
        home = environment["MACHINE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? homeFolder.appendingPathComponent(".machine")
        cache = environment["MACHINE_CACHE"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? home.appendingPathComponent("cache")
    }

    /// A short id of this home, in its machines' domain names: 8 hex digits of a 64-bit FNV-1a
    /// hash of the home's absolute path (stable, and needs no file the guest could reach).
    public var homeID: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in home.standardizedFileURL.path.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return String(String(hash, radix: 16).suffix(8)).leftPad(8)
    }

    public var images: URL { cache.appendingPathComponent("images") }
    public var engineBundles: URL { cache.appendingPathComponent("engine") }
    /// The host signature under which KVM last failed its probe (see AcceleratorProbe).
    public var kvmFailedVerdict: URL { cache.appendingPathComponent("kvm-failed") }

    /// Longest unix socket path the kernel accepts (sun_path is 108 bytes, NUL included).
    public static let maxSocketPathBytes = 107
}

extension String {
    fileprivate func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
