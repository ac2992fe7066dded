import Foundation

/// The builds a machine runs, and `machine upgrade` (`MachineUpgrade`).
extension Machines {
    public typealias Builds = MachineBuilds

    /// The builds the machine's last boot was made of, while the cache still has them.
    public func lastBootBuilds(_ name: String) -> Builds? {
        BootRecord.last(store.files(name))?.builds
    }

    /// Takes the machine's lock and plans its upgrade: the builds of the packages apt knows now
    /// against the ones it runs. The lock is held until the upgrade is let go.
    public func beginUpgrade(_ name: String, refreshPackageLists: Bool) throws(MachineError) -> MachineUpgrade {
        try MachineUpgrade(self, name: name, refreshPackageLists: refreshPackageLists)
    }
}
