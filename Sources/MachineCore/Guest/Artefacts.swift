import FoundationEssentials

/// One Debian package that went into an image or bundle.
public struct PackageRecord: Codable, Equatable, Sendable {
    public let name: String
    public let version: String
    public let sha256: String
}

public struct ArtefactRecord: Codable, Equatable, Sendable {
    public let size: Int
    public let sha256: String
}

/// A built guest image in the cache: `manifest.json` and the files it describes.
public struct GuestImage: Sendable {
    public struct Manifest: Codable, Sendable {
        public let key: String
        /// The hash of the recipe it was built from (`iso/build.sh --recipe-hash`); absent in
        /// older images.
        public let recipe: String?
        /// The Debian suite of its programs (`DebianSuite`); absent in images made before the choice.
        public let suite: String?
        public let kernel: String
        public let packages: [PackageRecord]
        public let artefacts: [String: ArtefactRecord]
        /// What the guest serves beyond sshd on TCP (iso/features.txt); absent in older images.
        public let features: [String]?
    }

    public let folder: URL
    public let manifest: Manifest

    public init(folder: URL) throws(MachineError) {
        self.folder = folder
        manifest = try decodeManifest(folder.appendingPathComponent("manifest.json"), Manifest.self)
    }

    public var suite: String { manifest.suite ?? DebianSuite.beforeChoice }

    /// The image runs an sshd for this split session of the agent (ssh-port-run).
    public func serves(_ link: SSHPortLink.Role) -> Bool { manifest.features?.contains(link.feature) == true }
    /// Whether the guest raises inotify events for host-side changes to its shares, written to
    /// its /proc/machine-notify (iso/notify).
    public var raisesShareEvents: Bool { manifest.features?.contains("share-events") == true }
    /// Whether the guest sets up the host's names, sends its DNS to the agent's resolver and
    /// keeps the door between containers and the host (boot.d/57-host-network.sh).
    public var servesHostNetwork: Bool { manifest.features?.contains("host-network") == true }

    /// Uncompressed kernel for direct boot (PVH).
    public var kernel: URL { folder.appendingPathComponent("vmlinux") }
    public var initramfs: URL { folder.appendingPathComponent("initramfs.img") }
    public var iso: URL { folder.appendingPathComponent("machine.iso") }

    public var kernelCommandLine: String {
        let text = (try? String(contentsOf: folder.appendingPathComponent("cmdline"), encoding: .utf8)) ?? ""
        return text.trimmed()
    }
}

/// A built engine bundle in the cache.
public struct EngineBundle: Sendable {
    public struct Manifest: Codable, Sendable {
        public let key: String
        /// The hash of the recipe it was built from; absent in older bundles.
        public let recipe: String?
        /// The Debian suite it comes from; absent in bundles made before the choice.
        public let suite: String?
        public let version: String
        public let docker: String
        public let packages: [PackageRecord]
        public let artefacts: [String: ArtefactRecord]
    }

    public let folder: URL
    public let manifest: Manifest

    public init(folder: URL) throws(MachineError) {
        self.folder = folder
        manifest = try decodeManifest(folder.appendingPathComponent("manifest.json"), Manifest.self)
    }

    public var suite: String { manifest.suite ?? DebianSuite.beforeChoice }
    public var archive: URL { folder.appendingPathComponent("engine.tar.xz") }
    /// The engine as a read-only ext4 disk a machine mounts at boot; nil in bundles made
    /// before there was one (those are uploaded and unpacked in the guest).
    public var disk: URL? {
        let disk = folder.appendingPathComponent("engine.img")
        return manifest.artefacts["engine.img"] != nil && FileManager.default.fileExists(atPath: disk.path) ? disk : nil
    }
    public var installScript: URL { folder.appendingPathComponent("install.sh") }
}

func decodeManifest<T: Decodable>(_ url: URL, _ type: T.Type) throws(MachineError) -> T {
    do {
        return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    } catch {
        throw MachineError("cannot read \(url.path): \(error)",
                           hint: "remove the folder \(url.deletingLastPathComponent().path) and build again")
    }
}
