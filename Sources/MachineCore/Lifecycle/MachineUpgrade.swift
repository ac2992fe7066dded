import FoundationEssentials

/// `machine upgrade`: the guest image and engine bundle built again from the packages Debian
/// has now (of the machine's suite, or of another it moves to), the machine restarted onto
/// them, and, when the new engine does not come up, booted again on the builds it ran before
/// and held there. One lock is held from the plan
/// to the end of a rollback, so no other command starts or changes the machine in between.
public final class MachineUpgrade {
    /// What the upgrade would change, shown before it restarts anything.
    public struct Plan: Sendable {
        public let name: String
        /// What the machine's last boot was made of; nil if it never booted, or its builds are
        /// gone from the cache.
        public let current: MachineBuilds?
        public let new: MachineBuilds
        /// Debian packages that differ, "name old -> new", "name new (added)", "name old (removed)".
        public let packageChanges: [String]
        public var upToDate: Bool { current.map { $0.isSame(as: new) } ?? false }
    }

    public let plan: Plan
    private let machine: LockedMachine
    private let lifecycle: MachineLifecycle

    /// Builds the image and engine bundle from the packages Debian
    /// has (fetching its package lists first when `refreshPackageLists`): of `suite` when
    /// given (kept as the machine's choice once it runs there), else of the machine's own
    /// choice, else of the default suite.
    convenience init(_ machine: LockedMachine, paths: Paths, lifecycle: MachineLifecycle, refreshPackageLists: Bool, suite: String? = nil) throws(MachineError) {
        let config = try machine.config()
        let target = suite ?? config.suite ?? DebianSuite.default
        let builder = Builder(recipes: try Recipes.locate(), paths: paths)
        // One fetch of the lists serves both recipes: the engine's suite is the image's.
        let new = MachineBuilds(image: config.iso == nil ? try builder.image(suite: target, refresh: refreshPackageLists) : nil,
                                engine: try builder.engineBundle(suite: target, refresh: refreshPackageLists && config.iso != nil))
        self.init(machine, new: new, lifecycle: lifecycle, chosenSuite: suite)
    }

    /// The suite the user named (`--suite`), kept in the machine's config once it comes up there.
    private let chosenSuite: String?

    /// The upgrade of a machine held under its lock onto `new`.
    init(_ machine: LockedMachine, new: MachineBuilds, lifecycle: MachineLifecycle, chosenSuite: String? = nil) {
        self.machine = machine
        self.lifecycle = lifecycle
        self.chosenSuite = chosenSuite
        let current = BootRecord.last(machine.files)?.builds
        plan = Plan(name: machine.name, current: current, new: new,
                    packageChanges: current.map { MachineBuilds.packageChanges(from: $0, to: new) } ?? [])
    }

    /// Lets a machine held after a failed upgrade follow the latest builds again.
    public func releaseHold() throws(MachineError) {
        try machine.change { $0.held = nil }
    }

    /// Restarts the machine onto the plan's builds and waits `engineTimeout` for the engine.
    /// When it does not come up, the machine is booted again on the builds it ran before and
    /// held on them (`MachineConfig.held`), and the error says so.
    public func apply(engineTimeout: Double) throws(MachineError) -> Machines.Started {
        let name = plan.name
        let progress = lifecycle.progress, runtime = lifecycle.runtime
        // A suspended machine is stopped to libvirt, and has a saved state to shut down cleanly.
        var mustStop = try runtime.status(name).state != .stopped
        if !mustStop { mustStop = try runtime.hasSavedState(name) }
        if mustStop {
            progress("stopping \(name)")
            try lifecycle.stop(machine, force: false)
        }
        try releaseHold()
        let failure: MachineError
        do {
            let started = try lifecycle.start(machine, engineTimeout: engineTimeout, builds: plan.new)
            if let chosenSuite { try machine.change { $0.suite = chosenSuite } }
            return started
        } catch {
            failure = error
        }
        let engineSaid = lastEngineLogLines()
        guard let previous = plan.current, !previous.isSame(as: plan.new) else {
            throw MachineError("\(name) did not come up on the new image and engine: \(failure.message)" + engineSaid,
                               hint: failure.hint ?? "see `machine logs \(name)`")
        }
        progress("\(name) did not come up on the new builds (\(failure.message)); going back to engine \(previous.engine.manifest.version)"
                 + (previous.image.map { " and image \($0.folder.lastPathComponent)" } ?? ""))
        try lifecycle.stop(machine, force: true)
        try machine.change { $0.held = previous.held }
        // Every machine that is not held starts on the cache's latest builds: those go back
        // too, so no other machine starts on an engine just seen failing.
        try Builder.pointLatest(at: previous.engine.folder, suite: previous.engine.suite)
        if let image = previous.image { try Builder.pointLatest(at: image.folder, suite: image.suite) }
        do {
            _ = try lifecycle.start(machine, builds: previous)
        } catch {
            throw MachineError("\(name) did not come up on the new builds (\(failure.message))\(engineSaid), nor on the ones it ran before: \(error.message)",
                               hint: error.hint)
        }
        throw MachineError(
            "the upgrade of \(name) failed: \(failure.message)\(engineSaid)\n"
                + "\(name) runs its previous engine \(previous.engine.manifest.version) again, and keeps it until an upgrade succeeds;"
                + " other machines start on it too until `machine image build` or an upgrade builds again",
            hint: "`machine upgrade\(MachineName.commandSuffix(name))` tries again (it fetches Debian's package lists first, so it finds a fix once Debian has one)")
    }

    /// The engine's last words on a guest that is still up, for the error of a failed upgrade.
    private func lastEngineLogLines() -> String {
        let lines = lifecycle.runtime.engineLogTail(machine).split(separator: "\n").map { "  " + $0 }
        return lines.isEmpty ? "" : "\nthe new engine's log ended with:\n" + lines.joined(separator: "\n")
    }
}

extension MachineBuilds {
    /// The Debian packages of two builds that differ, by name.
    static func packageChanges(from old: MachineBuilds, to new: MachineBuilds) -> [String] {
        func versions(_ builds: MachineBuilds) -> [String: String] {
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
