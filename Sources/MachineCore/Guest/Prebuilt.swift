import FoundationEssentials

/// The guest image and engine bundle installed with the binary for every account of the host
/// (`PREFIX/lib/machine/prebuilt/images/` and `engine/`, each with a `latest` link, put there
/// by scripts/install.sh). Read-only and shared: an account boots them when it has no current
/// build of its own, so its first `up` builds nothing; `machine upgrade` and `image build`
/// still build into the account's own cache. `$MACHINE_PREBUILT` names another folder.
public struct Prebuilt: Sendable, Equatable {
    public let root: URL

    public init(root: URL) {
        self.root = root
    }

    public var images: URL { root.appendingPathComponent("images") }
    public var engineBundles: URL { root.appendingPathComponent("engine") }

    /// The folder next to the running binary (`bin/../lib/machine/prebuilt`), or the
    /// environment's; nil when there is none (a binary run from its build folder).
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) -> Prebuilt? {
        if let explicit = environment["MACHINE_PREBUILT"] {
            return explicit.isEmpty ? nil : Prebuilt(root: URL(fileURLWithPath: explicit))
        }
        let root = AgentProcess.besideExecutable("../lib/machine/prebuilt")
        var isFolder = false
        return FileManager.default.fileExists(atPath: root.path, isDirectory: &isFolder) && isFolder ? Prebuilt(root: root) : nil
    }
}
