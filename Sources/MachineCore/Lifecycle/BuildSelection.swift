import FoundationEssentials
import HostOS

/// An image and an engine bundle a machine boots (no image for one that boots an ISO).
public struct MachineBuilds: Sendable {
    public let image: GuestImage?
    public let engine: EngineBundle

    public init(image: GuestImage?, engine: EngineBundle) {
        self.image = image
        self.engine = engine
    }

    var held: HeldBuilds { HeldBuilds(image: image?.folder.lastPathComponent, engine: engine.folder.lastPathComponent) }

    /// The same builds: the cache folders are named after a hash of every input.
    func isSame(as other: MachineBuilds) -> Bool {
        image?.folder.lastPathComponent == other.image?.folder.lastPathComponent
            && engine.folder.lastPathComponent == other.engine.folder.lastPathComponent
    }
}

/// Which builds a boot of a machine uses: the ones it is held on after a failed upgrade, else
/// the cache's latest of its Debian suite (built when the cache has none).
struct BuildSelection {
    let paths: Paths
    let progress: (String) -> Void

    /// The image; none for a machine that boots an ISO.
    func image(for config: MachineConfig, suite: String, quiet: Bool) throws(MachineError) -> GuestImage? {
        guard config.iso == nil else { return nil }
        let builder = Builder(recipes: try Recipes.locate(), paths: paths)
        if let key = config.held?.image {
            if let image = builder.cachedImage(key) { return image }
            progress("the image \(key) that \(config.name) is held on is gone from the cache; booting the latest instead")
        }
        return try builder.latestImage(suite: suite, quiet: quiet)
    }

    func engine(for config: MachineConfig, suite: String, quiet: Bool) throws(MachineError) -> EngineBundle {
        let builder = Builder(recipes: try Recipes.locate(), paths: paths)
        if let key = config.held?.engine {
            if let bundle = builder.cachedEngineBundle(key) { return bundle }
            progress("the engine \(key) that \(config.name) is held on is gone from the cache; using the latest instead")
        }
        return try builder.latestEngineBundle(suite: suite, quiet: quiet)
    }

    func builds(for config: MachineConfig, suite: String, quiet: Bool) throws(MachineError) -> MachineBuilds {
        MachineBuilds(image: try image(for: config, suite: suite, quiet: quiet), engine: try engine(for: config, suite: suite, quiet: quiet))
    }
}

/// What a boot is made of, kept in the machine's folder by the boot. A saved state holds the
/// devices and memory of the boot that made it, so it is restored only while a boot now would
/// be made of the same; `inspect` and `upgrade` name the builds the machine runs from it.
struct BootRecord: Codable, Equatable {
    var image: String?
    /// The engine's disk; none for a machine that boots an ISO (its engine is installed).
    var engine: String?
    /// The engine bundle's folder, for every machine (absent in records of older machines).
    var bundle: String?
    var cpus: Int
    var memoryMiB: Int
    var mounts: [Share]
    var mountType: ShareType
    /// The Debian suite of the builds (absent in records of older machines: bookworm's).
    var suite: String?
    /// How each share was served, by its guest path ("virtiofs" or "9p"): `auto` chooses at
    /// each boot from what the host has then, and `inspect` shows what the guest got.
    var transports: [String: String]?

    init(_ config: MachineConfig, builds: MachineBuilds, shares: [SharedFolder] = []) {
        image = builds.image?.folder.path
        engine = builds.image == nil ? nil : builds.engine.disk?.path
        bundle = builds.engine.folder.path
        suite = builds.image?.suite ?? builds.engine.suite
        cpus = config.cpus
        memoryMiB = config.memoryMiB
        mounts = config.mounts
        mountType = config.mountType
        transports = shares.isEmpty ? nil : Dictionary(shares.map { ($0.share.guestPath, $0.typeName) }, uniquingKeysWith: { first, _ in first })
    }

    /// Whether a boot now would be made of the same builds and shape, so a saved state of that
    /// boot can be restored. The transports follow from the shares and the host, and a machine
    /// with shares is never saved. The suite follows from the builds (and older records lack it).
    func isSameBoot(as other: BootRecord) -> Bool {
        var mine = self, theirs = other
        mine.transports = nil
        theirs.transports = nil
        mine.suite = nil
        theirs.suite = nil
        return mine == theirs
    }

    /// What the machine's last boot was made of; nil if it never booted (or the file is unreadable).
    static func last(_ files: MachineFiles) -> BootRecord? {
        guard let data = try? Data(contentsOf: files.bootRecord) else { return nil }
        return try? JSONDecoder().decode(BootRecord.self, from: data)
    }

    func save(_ files: MachineFiles) throws(MachineError) {
        guard let data = try? JSONEncoder().encode(self) else { return }
        try AtomicFile.save(data, to: files.bootRecord, mode: 0o600)
    }

    /// The builds this boot was made of, while the cache still has them.
    var builds: MachineBuilds? {
        guard let folder = bundle ?? engine.map({ URL(fileURLWithPath: $0).deletingLastPathComponent().path }),
              let engine = try? EngineBundle(folder: URL(fileURLWithPath: folder))
        else { return nil }
        let image = self.image.flatMap { try? GuestImage(folder: URL(fileURLWithPath: $0)) }
        if self.image != nil && image == nil { return nil }
        return MachineBuilds(image: image, engine: engine)
    }
}
