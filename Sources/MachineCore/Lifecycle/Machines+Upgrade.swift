import Foundation
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `machine upgrade`: the guest image and engine bundle built again from the packages apt
/// knows now, the machine restarted onto them, and, when the new engine does not come up,
/// booted again on the builds it ran before and held there.
extension Machines {
    /// An image and an engine bundle a machine boots (no image for one that boots an ISO).
    public struct Builds: Sendable {
        public let image: GuestImage?
        public let engine: EngineBundle

        var held: HeldBuilds { HeldBuilds(image: image?.folder.lastPathComponent, engine: engine.folder.lastPathComponent) }

        /// The same builds: the cache folders are named after a hash of every input.
        func isSame(as other: Builds) -> Bool {
            image?.folder.lastPathComponent == other.image?.folder.lastPathComponent
                && engine.folder.lastPathComponent == other.engine.folder.lastPathComponent
        }
    }

    /// What an upgrade would change, shown before it restarts anything.
    public struct UpgradePlan: Sendable {
        public let name: String
        /// What the machine's last boot was made of; nil if it never booted, or its builds are
        /// gone from the cache.
        public let current: Builds?
        public let new: Builds
        /// Debian packages that differ, "name old -> new", "name new (added)", "name old (removed)".
        public let packageChanges: [String]
        public var upToDate: Bool { current.map { $0.isSame(as: new) } ?? false }
    }

    /// The image a boot of this machine uses: the one it is held on after a failed upgrade,
    /// else the latest build. None for a machine that boots an ISO.
    func guestImage(for config: MachineConfig, quiet: Bool) throws(MachineError) -> GuestImage? {
        guard config.iso == nil else { return nil }
        if let key = config.held?.image {
            if let image = try? GuestImage(folder: paths.images.appendingPathComponent(key)) { return image }
            progress("the image \(key) that \(config.name) is held on is gone from the cache; booting the latest instead")
        }
        return try Builder(recipes: try Recipes.locate(), paths: paths).latestImage(quiet: quiet)
    }

    /// The engine bundle a start of this machine uses: the held one, else the latest build.
    func engineBundle(for config: MachineConfig, quiet: Bool) throws(MachineError) -> EngineBundle {
        if let key = config.held?.engine {
            if let bundle = try? EngineBundle(folder: paths.engineBundles.appendingPathComponent(key)) { return bundle }
            progress("the engine \(key) that \(config.name) is held on is gone from the cache; using the latest instead")
        }
        return try Builder(recipes: try Recipes.locate(), paths: paths).latestEngineBundle(quiet: quiet)
    }

    /// The builds the machine's last boot was made of, while the cache still has them.
    public func lastBootBuilds(_ name: String) -> Builds? {
        guard let record = lastBootRecord(store.files(name)),
              let bundle = record.bundle ?? record.engine.map({ URL(fileURLWithPath: $0).deletingLastPathComponent().path }),
              let engine = try? EngineBundle(folder: URL(fileURLWithPath: bundle))
        else { return nil }
        let image = record.image.flatMap { try? GuestImage(folder: URL(fileURLWithPath: $0)) }
        if record.image != nil && image == nil { return nil }
        return Builds(image: image, engine: engine)
    }

    /// Builds the image and engine bundle from the packages apt knows now (refreshing apt's
    /// lists first when `refreshPackageLists` and this is root) and says what would change.
    public func planUpgrade(_ name: String, refreshPackageLists: Bool) throws(MachineError) -> UpgradePlan {
        let config = try trustedConfig(name)
        if refreshPackageLists { refreshAptLists() }
        let builder = Builder(recipes: try Recipes.locate(), paths: paths)
        let image = config.iso == nil ? try builder.image() : nil
        let engine = try builder.engineBundle()
        let new = Builds(image: image, engine: engine)
        let current = lastBootBuilds(name)
        return UpgradePlan(name: name, current: current, new: new,
                           packageChanges: current.map { Self.packageChanges(from: $0, to: new) } ?? [])
    }

    /// Restarts the machine onto the plan's builds and waits `engineTimeout` for the engine.
    /// When it does not come up, the machine is booted again on the builds it ran before and
    /// held on them (`MachineConfig.held`), and the error says so.
    public func applyUpgrade(_ plan: UpgradePlan, engineTimeout: Double) throws(MachineError) -> Started {
        let name = plan.name
        // A suspended machine is stopped to libvirt, and has a saved state to shut down cleanly.
        var mustStop = try hypervisor.status(name).state != .stopped
        if !mustStop { mustStop = try hypervisor.hasSavedState(name) }
        if mustStop {
            progress("stopping \(name)")
            try stop(name, force: false)
        }
        try hold(name, on: nil)
        let failure: MachineError
        do {
            return try start(name, engineTimeout: engineTimeout)
        } catch {
            failure = error
        }
        let engineSaid = lastEngineLogLines(name)
        guard let previous = plan.current, !previous.isSame(as: plan.new) else {
            throw MachineError("\(name) did not come up on the new image and engine: \(failure.message)" + engineSaid,
                               hint: failure.hint ?? "see `machine logs \(name)`")
        }
        progress("\(name) did not come up on the new builds (\(failure.message)); going back to engine \(previous.engine.manifest.version)"
                 + (previous.image.map { " and image \($0.folder.lastPathComponent)" } ?? ""))
        try stop(name, force: true)
        try hold(name, on: previous.held)
        // Every machine that is not held starts on the cache's latest builds: those go back
        // too, so no other machine starts on an engine just seen failing.
        for folder in [previous.image?.folder, previous.engine.folder].compactMap({ $0 }) {
            try Builder.pointLatest(at: folder)
        }
        do {
            _ = try start(name)
        } catch {
            throw MachineError("\(name) did not come up on the new builds (\(failure.message))\(engineSaid), nor on the ones it ran before: \(error.message)",
                               hint: error.hint)
        }
        throw MachineError(
            "the upgrade of \(name) failed: \(failure.message)\(engineSaid)\n"
                + "\(name) runs its previous engine \(previous.engine.manifest.version) again, and keeps it until an upgrade succeeds;"
                + " other machines start on it too until `machine image build` or an upgrade builds again",
            hint: "`machine upgrade\(MachineName.commandSuffix(name))` tries again (after `apt-get update` as root, when Debian has a fix)")
    }

    /// Lets a machine held after a failed upgrade follow the latest builds again.
    public func releaseHold(_ name: String) throws(MachineError) {
        try hold(name, on: nil)
    }

    private func hold(_ name: String, on builds: HeldBuilds?) throws(MachineError) {
        try changeConfig(name) { (config: inout MachineConfig) throws(MachineError) in config.held = builds }
    }

    /// The engine's last words on a guest that is still up, for the error of a failed upgrade
    /// (the guest's /var/log is in memory and goes with the next boot).
    private func lastEngineLogLines(_ name: String) -> String {
        guard let session = try? guest(name).connect(timeout: 10),
              let result = try? session.run("tail -n 5 /var/log/docker.log 2>/dev/null"), result.status == 0
        else { return "" }
        let lines = String(decoding: result.output, as: UTF8.self).split(separator: "\n").map { "  " + $0 }
        return lines.isEmpty ? "" : "\nthe new engine's log ended with:\n" + lines.joined(separator: "\n")
    }

    /// apt-get update as root; for anyone else, how old apt's lists are and who can refresh them.
    private func refreshAptLists() {
        guard getuid() == 0 else {
            let lists = (try? FileManager.default.contentsOfDirectory(atPath: "/var/lib/apt/lists")) ?? []
            let newest = lists.filter { $0.hasSuffix("Release") }
                .compactMap { try? FileManager.default.attributesOfItem(atPath: "/var/lib/apt/lists/" + $0)[.modificationDate] as? Date }
                .max()
            let age = newest.map { " (refreshed \(Int(Date().timeIntervalSince($0) / 86_400)) days ago)" } ?? ""
            progress("building from the Debian packages apt knows now\(age); only root can refresh that list: `sudo apt-get update`")
            return
        }
        progress("refreshing apt's package lists (apt-get update)")
        let result = try? Subprocess.outcome(of: ["apt-get", "update", "-q"], timeout: 600)
        if result?.status != 0 {
            let last = result?.output.split(separator: "\n").last.map(String.init) ?? "it did not run"
            progress("apt-get update failed (\(last)); building from the package lists apt already has")
        }
    }

    /// The Debian packages of two builds that differ, by name.
    static func packageChanges(from old: Builds, to new: Builds) -> [String] {
        func versions(_ builds: Builds) -> [String: String] {
            let packages = (builds.image?.manifest.packages ?? []) + builds.engine.manifest.packages
            return Dictionary(packages.map { ($0.name, $0.version) }, uniquingKeysWith: { first, _ in first })
        }
        let before = versions(old), after = versions(new)
        return Set(before.keys).union(after.keys).sorted().compactMap { name in
            switch (before[name], after[name]) {
            case let (was?, now?) where was != now: "\(name) \(was) -> \(now)"
            case let (nil, now?): "\(name) \(now) (added)"
            case let (was?, nil): "\(name) \(was) (removed)"
            default: nil
            }
        }
    }
}
