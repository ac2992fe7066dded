import FoundationEssentials
import HostOS

/// The lines the host agent writes to the guest's /proc/machine-notify (iso/notify) for a change
/// made on the host to a shared folder: `OP COOKIE GUESTPATH`, the guest path being where the
/// guest mounts the share plus the path inside it.
public struct ShareEventLines: Sendable {
    /// Shares whose host edits reach the guest as events: read-write ones, unless `noinotify`.
    public let shares: [Share]

    public init(shares: [Share]) {
        // The innermost share first: a path under two shares is the inner one's in the guest.
        // Read-only ones stay in the list (a path inside one is the inner share's, raising
        // nothing); only those with events are watched.
        self.shares = shares.sorted { $0.hostPath.count > $1.hostPath.count }
    }

    /// The folders to watch on the host.
    public var roots: [String] { shares.filter(\.raisesEvents).map(\.hostPath) }

    /// The line for one inotify event on `hostPath`, or nil if it is none of ours (outside the
    /// shares, an event kind the guest does not raise, a name a line cannot carry).
    public func line(mask: UInt32, cookie: UInt32, hostPath: String) -> String? {
        guard let operation = Self.operation(mask), !hostPath.contains("\n"),
              let share = shares.first(where: { hostPath.hasPrefix($0.hostPath == "/" ? "/" : $0.hostPath + "/") }),
              share.raisesEvents
        else { return nil }
        let inside = hostPath.dropFirst(share.hostPath == "/" ? 1 : share.hostPath.count + 1)
        let guestPath = share.guestPath == "/" ? "/" + inside : share.guestPath + "/" + inside
        let kind = mask & InotifyMask.isDirectory != 0 ? operation + GuestContract.notifyDirectorySuffix : operation
        return "\(kind) \(cookie) \(guestPath)\n"
    }

    static func operation(_ mask: UInt32) -> String? {
        let names: [(UInt32, String)] = [(InotifyMask.create, "create"), (InotifyMask.delete, "delete"), (InotifyMask.modify, "modify"),
                                         (InotifyMask.closeWrite, "closewrite"), (InotifyMask.attrib, "attrib"),
                                         (InotifyMask.movedFrom, "movedfrom"), (InotifyMask.movedTo, "movedto")]
        return names.first { mask & $0.0 != 0 }?.1
    }
}

extension Share {
    /// Whether host edits inside it become events in the guest.
    public var raisesEvents: Bool { !readOnly && inotify }
}
