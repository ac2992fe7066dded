import Foundation

/// Where `machine` keeps its files. Every name inside these folders is defined here.
public struct Paths: Sendable {
    /// `$MACHINE_HOME`, default `~/.machine`: short, because a unix socket path inside it
    /// must stay under 108 bytes.
    public let home: URL
    /// Downloaded packages and built images and bundles (`$MACHINE_CACHE` overrides it).
    public let cache: URL

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let homeFolder = environment["HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser
        home = environment["MACHINE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? homeFolder.appendingPathComponent(".machine")
        cache = environment["MACHINE_CACHE"].map { URL(fileURLWithPath: $0) }
            ?? home.appendingPathComponent("cache")
    }

    public var images: URL { cache.appendingPathComponent("images") }
    public var engineBundles: URL { cache.appendingPathComponent("engine") }
    /// The host signature under which KVM last failed its probe (see AcceleratorProbe).
    public var kvmFailedVerdict: URL { cache.appendingPathComponent("kvm-failed") }

    /// Longest unix socket path the kernel accepts (sun_path is 108 bytes, NUL included).
    public static let maxSocketPathBytes = 107
}
