import FoundationEssentials
import HostOS

/// Builds guest images and engine bundles by running the recipes in `iso/` and
/// `provisioning/`. The recipes do the work (and their own caching); this runs them with
/// the right cache and turns their outcome into a value or a MachineError.
public struct Builder: Sendable {
    public let recipes: Recipes
    public let paths: Paths
    /// Builds installed with the binary for every account (`Prebuilt`), if any.
    public let prebuilt: Prebuilt?

    public init(recipes: Recipes, paths: Paths, prebuilt: Prebuilt? = Prebuilt.locate()) {
        self.recipes = recipes
        self.paths = paths
        self.prebuilt = prebuilt
    }

    /// The image of `suite` for the current recipe and Debian mirror, built if it is not cached;
    /// `refresh` fetches Debian's package lists first. Progress lines from the recipe go to
    /// stderr unless `quiet`.
    public func image(suite: String, refresh: Bool = false, quiet: Bool = false) throws(MachineError) -> GuestImage {
        try GuestImage(folder: run(recipes.imageBuildScript, suite: suite, refresh: refresh, quiet: quiet, what: "guest image"))
    }

    /// The image of `suite` to boot: the account's own latest build (`machine upgrade` and
    /// `image build` make them), else the one installed for every account (so a first `up`
    /// builds nothing), whichever is of the current recipe; else a new build (a `machine`
    /// upgrade changed what the guest runs). Starting a machine uses this: fetching Debian's
    /// package lists costs seconds, so only `machine image build` and `upgrade` do.
    public func latestImage(suite: String, quiet: Bool = false) throws(MachineError) -> GuestImage {
        try latest(own: paths.images, installed: prebuilt?.images, suite: suite, script: recipes.imageBuildScript, what: "guest image", quiet: quiet,
                   open: { (folder) throws(MachineError) in try GuestImage(folder: folder) }, recipe: \.manifest.recipe,
                   build: { () throws(MachineError) in try image(suite: suite, quiet: quiet) })
    }

    /// The engine bundle to use, chosen as `latestImage` chooses.
    public func latestEngineBundle(suite: String, quiet: Bool = false) throws(MachineError) -> EngineBundle {
        try latest(own: paths.engineBundles, installed: prebuilt?.engineBundles, suite: suite, script: recipes.engineBuildScript, what: "engine bundle",
                   quiet: quiet, open: { (folder) throws(MachineError) in try EngineBundle(folder: folder) }, recipe: \.manifest.recipe,
                   build: { () throws(MachineError) in try engineBundle(suite: suite, quiet: quiet) })
    }

    /// The image of that key (a held build) in the account's cache or among the installed ones.
    public func cachedImage(_ key: String) -> GuestImage? {
        [paths.images, prebuilt?.images].compactMap { $0 }.lazy.compactMap { try? GuestImage(folder: $0.appendingPathComponent(key)) }.first
    }

    /// The engine bundle of that key, found as `cachedImage` finds an image.
    public func cachedEngineBundle(_ key: String) -> EngineBundle? {
        [paths.engineBundles, prebuilt?.engineBundles].compactMap { $0 }.lazy.compactMap { try? EngineBundle(folder: $0.appendingPathComponent(key)) }.first
    }

    /// The link to the latest build of a suite in a cache folder of builds (`images/`, `engine/`).
    public static func latestLink(in folder: URL, suite: String) -> URL {
        folder.appendingPathComponent("latest-\(suite)")
    }

    private func latest<Build>(own: URL, installed: URL?, suite: String, script: URL, what: String, quiet: Bool,
                               open: (URL) throws(MachineError) -> Build, recipe: (Build) -> String?,
                               build: () throws(MachineError) -> Build) throws(MachineError) -> Build {
        let ownBuild = try? open(Self.latestLink(in: own, suite: suite).resolvingSymlinksInPath())
        if let ownBuild, isCurrent(recipe(ownBuild), script: script) { return ownBuild }
        if let installed, let shipped = try? open(Self.latestLink(in: installed, suite: suite).resolvingSymlinksInPath()),
           isCurrent(recipe(shipped), script: script) {
            return shipped
        }
        if ownBuild != nil && !quiet {
            StandardStream.error.write("==> the cached \(what) was built from another recipe (machine was upgraded): building it again\n")
        }
        return try build()
    }

    /// Points the suite's `latest` of the build's kind (`images/` or `engine/`) at `folder`, a
    /// build in the same cache folder, replacing the link in one rename as the recipes'
    /// point_latest does.
    public static func pointLatest(at folder: URL, suite: String) throws(MachineError) {
        let parent = folder.deletingLastPathComponent()
        let link = latestLink(in: parent, suite: suite)
        do {
            try HostPath.replaceLink(link.path, pointingTo: folder.lastPathComponent)
        } catch {
            throw MachineError(error)
        }
    }

    /// Whether a cached build's recipe hash is the current recipe's. A recipe that cannot say
    /// (an older script) keeps the cached build.
    /// (An installed build is judged the same way: one from an older package is never booted
    /// by a newer binary.)
    private func isCurrent(_ builtFrom: String?, script: URL) -> Bool {
        guard let current = recipeHash(script) else { return true }
        return builtFrom == current
    }

    private func recipeHash(_ script: URL) -> String? {
        guard let run = try? Subprocess.capture(["/bin/bash", script.path, "--recipe-hash"], showErrors: false) else { return nil }
        let hash = String(decoding: run.output, as: UTF8.self).trimmed()
        return run.status == 0 && hash.count == 16 && hash.allSatisfy(\.isHexDigit) ? hash : nil
    }

    /// The recipes run system tools (depmod, mkfs) that Debian keeps in the sbin folders, which
    /// are not on an ordinary user's PATH: they are added after whatever the user has.
    static func environmentWithSystemTools(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> [String: String] {
        var environment = environment
        var path = (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
        for folder in ["/usr/local/sbin", "/usr/sbin", "/sbin"] where !path.contains(folder) { path.append(folder) }
        environment["PATH"] = path.joined(separator: ":")
        return environment
    }

    public func engineBundle(suite: String, refresh: Bool = false, quiet: Bool = false) throws(MachineError) -> EngineBundle {
        try EngineBundle(folder: run(recipes.engineBuildScript, suite: suite, refresh: refresh, quiet: quiet, what: "engine bundle"))
    }

    private func run(_ script: URL, suite: String, refresh: Bool, quiet: Bool, what: String) throws(MachineError) -> URL {
        let argv = ["/bin/bash", script.path, "--suite", suite, "--cache", paths.cache.path] + (refresh ? ["--refresh"] : []) + (quiet ? ["--quiet"] : [])
        let run: (status: Int32, output: Data)
        do {
            // The recipe's progress and its error + hint lines go straight to the user.
            run = try Subprocess.capture(argv, environment: Self.environmentWithSystemTools(), showErrors: true)
        } catch {
            throw MachineError("cannot run \(script.path): \(error)", hint: "check that bash is installed")
        }
        guard run.status == 0 else {
            throw MachineError("building the \(what) failed (see the error above)")
        }
        let folder = String(decoding: run.output, as: UTF8.self).trimmed()
            .split(separator: "\n").last.map(String.init) ?? ""
        guard !folder.isEmpty else {
            throw MachineError("the \(what) recipe \(script.path) printed no result folder")
        }
        return URL(fileURLWithPath: folder)
    }
}
