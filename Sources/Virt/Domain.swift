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
        virDomainFree(handle)
    }

    public enum State: String, Sendable, Codable {
        case running, paused, shuttingDown = "shutting down", stopped, crashed, suspended, unknown
    }

    public var name: String {
        virDomainGetName(handle).map { String(cString: $0) } ?? ""
    }

    /// Read from libvirt every time: the daemon, not a file of ours, knows whether it runs.
    public func state() throws(LibvirtError) -> State {
        var state: Int32 = 0
        var reason: Int32 = 0
        guard virDomainGetState(handle, &state, &reason, 0) == 0 else {
            throw LibvirtError.last("reading the state of \(name)")
        }
        switch virDomainState(UInt32(state)) {
        case VIR_DOMAIN_RUNNING, VIR_DOMAIN_BLOCKED: return .running
        case VIR_DOMAIN_PAUSED: return .paused
        case VIR_DOMAIN_SHUTDOWN: return .shuttingDown
        case VIR_DOMAIN_SHUTOFF: return .stopped
        case VIR_DOMAIN_CRASHED: return .crashed
        case VIR_DOMAIN_PMSUSPENDED: return .suspended
        default: return .unknown
        }
    }

    /// Boots a defined domain.
    public func start() throws(LibvirtError) {
        guard virDomainCreate(handle) == 0 else { throw LibvirtError.last("starting \(name)") }
    }

    /// Asks the guest to power off (ACPI power button); returns at once.
    public func shutdown() throws(LibvirtError) {
        guard virDomainShutdown(handle) == 0 else { throw LibvirtError.last("shutting down \(name)") }
    }

    /// Pulls the plug.
    public func destroy() throws(LibvirtError) {
        guard virDomainDestroy(handle) == 0 else { throw LibvirtError.last("stopping \(name)") }
    }

    /// Removes the definition (the domain must not be running).
    public func undefine() throws(LibvirtError) {
        guard virDomainUndefine(handle) == 0 else { throw LibvirtError.last("removing the definition of \(name)") }
    }

    /// The domain's XML as libvirt stores it.
    public func xml() throws(LibvirtError) -> String {
        guard let text = virDomainGetXMLDesc(handle, 0) else {
            throw LibvirtError.last("reading the definition of \(name)")
        }
        defer { free(text) }
        return String(cString: text)
    }
}

extension Connection {
    /// Defines (or redefines) a persistent domain from XML.
    public func define(xml: String) throws(LibvirtError) -> Domain {
        guard let handle = virDomainDefineXML(self.handle, xml) else {
            throw LibvirtError.last("defining a domain")
        }
        return Domain(handle: handle, connection: self)
    }

    /// The domain with this name, or nil if libvirt has none.
    public func domain(named name: String) throws(LibvirtError) -> Domain? {
        if let handle = virDomainLookupByName(self.handle, name) {
            return Domain(handle: handle, connection: self)
        }
        let error = LibvirtError.last("looking up \(name)")
        if error.code == Int32(VIR_ERR_NO_DOMAIN.rawValue) { return nil }
        throw error
    }
}
