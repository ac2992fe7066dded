import FoundationEssentials

/// The builds a machine runs, and `machine upgrade` (`MachineUpgrade`).
extension Machines {
    public typealias Builds = MachineBuilds

    /// The builds the machine's last boot was made of, while the cache still has them.
    public func lastBootBuilds(_ name: String) -> Builds? {
        BootRecord.last(store.files(name))?.builds
    }

    /// Takes the machine's lock and plans its upgrade: the builds of the packages Debian has
    /// now (of `suite` when given) against the ones it runs. The lock is held until the
    /// upgrade is let go.
    public func beginUpgrade(_ name: String, refreshPackageLists: Bool, suite: String? = nil) throws(MachineError) -> MachineUpgrade {
        try MachineUpgrade(try lock(name), paths: paths, lifecycle: lifecycle, refreshPackageLists: refreshPackageLists, suite: suite)
    }

    /// The Debian suite the machine runs (or its first boot will): see `DebianSuite.forBoot`.
    public func runningSuite(_ name: String) -> String {
        let config = try? store.config(name)
        return config.map { DebianSuite.forBoot($0, lastBoot: BootRecord.last(store.files(name))) } ?? DebianSuite.default
    }
}
