import CLibvirt
#if canImport(Glibc)
import Glibc
#endif

/// A libvirt domain (a VM definition, running or not). Keeps its connection alive.
public final class Domain {
    let handle: virDomainPtr
    public let connection: Connection

    init(handle: virDomainPtr, connection: Connection) {
        self.handle = handle
        self.connection = connection
    }

    deinit {
        _ = lv.virDomainFree(handle)
    }

    public enum State: String, Sendable, Codable {
        case running, paused, shuttingDown = "shutting down", stopped, crashed, suspended, unknown
    }

    public var name: String {
        lv.virDomainGetName(handle).map { String(cString: $0) } ?? ""
    }

    /// libvirt's UUID of the domain: a domain defined anew under the same name has another.
    public var uuid: String {
        var text = [CChar](repeating: 0, count: Int(VIR_UUID_STRING_BUFLEN))
        guard lv.virDomainGetUUIDString(handle, &text) == 0 else { return "" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A state and libvirt's reason for it ("paused", "unknown"; "stopped", "crashed").
    public struct Status: Sendable, Equatable {
        public let state: State
        /// libvirt's reason in words, e.g. "user" for a pause someone asked for, "crashed" for
        /// a QEMU that died; "unknown" when libvirt does not know (QEMU stopped the CPUs itself).
        public let reason: String
        public init(state: State, reason: String) {
            self.state = state
            self.reason = reason
        }
    }

    /// Read from libvirt every time: the daemon, not a file of ours, knows whether it runs.
    public func state() throws(LibvirtError) -> State {
        try status().state
    }

    /// The state with libvirt's reason for it.
    public func status() throws(LibvirtError) -> Status {
        var state: Int32 = 0
        var reason: Int32 = 0
        guard lv.virDomainGetState(handle, &state, &reason, 0) == 0 else {
            throw LibvirtError.last("reading the state of \(name)")
        }
        return Self.status(state: state, reason: reason)
    }

    static func status(state: Int32, reason: Int32) -> Status {
        switch virDomainState(UInt32(state)) {
        case VIR_DOMAIN_RUNNING, VIR_DOMAIN_BLOCKED:
            return Status(state: .running, reason: Self.word(reason, [
                "unknown", "booted", "migrated", "restored", "from snapshot", "unpaused", "migration canceled",
                "save canceled", "woken up", "crashed", "post-copy", "post-copy failed"]))
        case VIR_DOMAIN_PAUSED:
            return Status(state: .paused, reason: Self.word(reason, [
                "unknown", "user", "migration", "save", "dump", "disk I/O error", "watchdog", "from snapshot",
                "shutting down", "snapshot", "guest crashed", "starting up", "post-copy", "post-copy failed", "API error"]))
        case VIR_DOMAIN_SHUTDOWN:
            return Status(state: .shuttingDown, reason: Self.word(reason, ["unknown", "user"]))
        case VIR_DOMAIN_SHUTOFF:
            return Status(state: .stopped, reason: Self.word(reason, [
                "unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed to start",
                "from snapshot", "killed by libvirtd"]))
        case VIR_DOMAIN_CRASHED:
            return Status(state: .crashed, reason: Self.word(reason, ["unknown", "panicked"]))
        case VIR_DOMAIN_PMSUSPENDED:
            return Status(state: .suspended, reason: Self.word(reason, ["unknown"]))
        default:
            return Status(state: .unknown, reason: "unknown")
        }
    }

    private static func word(_ reason: Int32, _ words: [String]) -> String {
        words.indices.contains(Int(reason)) ? words[Int(reason)] : "unknown (\(reason))"
    }

    /// Whether QEMU runs for it (running, paused, shutting down, crashed-but-kept, pmsuspended).
    public func isActive() throws(LibvirtError) -> Bool {
        let active = lv.virDomainIsActive(handle)
        guard active >= 0 else { throw LibvirtError.last("asking whether \(name) runs") }
        return active == 1
    }

    /// Saves the running guest's memory and devices to a file libvirt keeps, and stops its
    /// QEMU; the next `start` restores it (libvirt's "managed save").
    public func managedSave() throws(LibvirtError) {
        guard lv.virDomainManagedSave(handle, 0) == 0 else { throw LibvirtError.last("saving \(name)") }
    }

    /// Whether a managed save waits to be restored by the next `start`.
    public func hasManagedSave() throws(LibvirtError) -> Bool {
        let has = lv.virDomainHasManagedSaveImage(handle, 0)
        guard has >= 0 else { throw LibvirtError.last("asking whether \(name) has a saved state") }
        return has == 1
    }

    /// Throws a managed save away: the next `start` boots afresh.
    public func removeManagedSave() throws(LibvirtError) {
        guard lv.virDomainManagedSaveRemove(handle, 0) == 0 else { throw LibvirtError.last("removing the saved state of \(name)") }
    }

    /// Stops the domain's CPUs, keeping its QEMU (libvirt's reason: "user").
    public func suspend() throws(LibvirtError) {
        guard lv.virDomainSuspend(handle) == 0 else { throw LibvirtError.last("pausing \(name)") }
    }

    /// Lets the CPUs of a paused domain run again.
    public func resume() throws(LibvirtError) {
        guard lv.virDomainResume(handle) == 0 else { throw LibvirtError.last("resuming \(name)") }
    }

    /// Boots a defined domain.
    public func start() throws(LibvirtError) {
        guard lv.virDomainCreate(handle) == 0 else { throw LibvirtError.last("starting \(name)") }
    }

    /// Asks the guest to power off (ACPI power button); returns at once.
    public func shutdown() throws(LibvirtError) {
        guard lv.virDomainShutdown(handle) == 0 else { throw LibvirtError.last("shutting down \(name)") }
    }

    /// Pulls the plug.
    public func destroy() throws(LibvirtError) {
        guard lv.virDomainDestroy(handle) == 0 else { throw LibvirtError.last("stopping \(name)") }
    }

    /// Removes the definition, and a saved state libvirt may keep for it (a domain that still
    /// runs becomes transient and goes away when it stops).
    public func undefine() throws(LibvirtError) {
        guard lv.virDomainUndefineFlags(handle, UInt32(VIR_DOMAIN_UNDEFINE_MANAGED_SAVE.rawValue)) == 0 else {
            throw LibvirtError.last("removing the definition of \(name)")
        }
    }

    /// Our element in the domain's `<metadata>` under `namespace`, nil if it has none. From
    /// the persistent definition (what the next boot will use) if `persistent`, else from the
    /// running one where it runs.
    public func metadata(namespace: String, persistent: Bool = false) throws(LibvirtError) -> String? {
        let flags = persistent ? UInt32(VIR_DOMAIN_AFFECT_CONFIG.rawValue) : 0
        guard let text = lv.virDomainGetMetadata(handle, Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue), namespace, flags) else {
            let error = LibvirtError.last("reading the metadata of \(name)")
            if error.code == Int32(VIR_ERR_NO_DOMAIN_METADATA.rawValue) { return nil }
            throw error
        }
        defer { free(text) }
        return String(cString: text)
    }

    /// Replaces our element under `namespace` (its prefix `key`) in the persistent definition,
    /// and in the running one if the domain runs.
    public func setMetadata(_ xml: String, key: String, namespace: String) throws(LibvirtError) {
        var flags = UInt32(VIR_DOMAIN_AFFECT_CONFIG.rawValue)
        if try isActive() { flags |= UInt32(VIR_DOMAIN_AFFECT_LIVE.rawValue) }
        guard lv.virDomainSetMetadata(handle, Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue), xml, key, namespace, flags) == 0 else {
            throw LibvirtError.last("writing the metadata of \(name)")
        }
    }

    /// The domain's XML as libvirt stores it.
    public func xml() throws(LibvirtError) -> String {
        guard let text = lv.virDomainGetXMLDesc(handle, 0) else {
            throw LibvirtError.last("reading the definition of \(name)")
        }
        defer { free(text) }
        return String(cString: text)
    }

    /// Runs one command of QEMU's human monitor (HMP) through libvirt and returns what it
    /// printed: HMP reports most failures as text, not as an error. libvirt marks the domain
    /// tainted ("custom-monitor"), as the <qemu:commandline> it already has does.
    public func humanMonitorCommand(_ command: String) throws(LibvirtError) -> String {
        var result: UnsafeMutablePointer<CChar>?
        guard lv.virDomainQemuMonitorCommand(handle, command, &result, UInt32(VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP.rawValue)) == 0 else {
            throw LibvirtError.last("asking QEMU's monitor of \(name)")
        }
        defer { free(result) }
        return result.map { String(cString: $0) } ?? ""
    }
}

extension Connection {
    /// Defines (or redefines) a persistent domain from XML.
    public func define(xml: String) throws(LibvirtError) -> Domain {
        guard let handle = lv.virDomainDefineXML(self.handle, xml) else {
            throw LibvirtError.last("defining a domain")
        }
        return Domain(handle: handle, connection: self)
    }

    /// The domain with this name, or nil if libvirt has none.
    public func domain(named name: String) throws(LibvirtError) -> Domain? {
        if let handle = lv.virDomainLookupByName(self.handle, name) {
            return Domain(handle: handle, connection: self)
        }
        let error = LibvirtError.last("looking up \(name)")
        if error.code == Int32(VIR_ERR_NO_DOMAIN.rawValue) { return nil }
        throw error
    }
}
