import CLibvirt
#if canImport(Glibc)
import Glibc
#endif

/// An open connection to a libvirt daemon (or to the built-in `test:///default` driver).
/// Closed when the last reference goes away.
public final class Connection {
    let handle: virConnectPtr
    public let uri: String

    public init(uri: String) throws(LibvirtError) {
        try Libvirt.require()
        _ = silenceLibvirtPrinter
        guard let handle = lv.virConnectOpen(uri) else {
            throw LibvirtError.last("connecting to \(uri)")
        }
        self.handle = handle
        self.uri = uri
    }

    deinit {
        _ = lv.virConnectClose(handle)
    }

    /// The driver's name, e.g. "QEMU" or "Test".
    public func hypervisorType() throws(LibvirtError) -> String {
        guard let name = lv.virConnectGetType(handle) else {
            throw LibvirtError.last("asking \(uri) for its hypervisor type")
        }
        return String(cString: name)
    }

    /// The daemon's libvirt version as major.minor.micro.
    public func libvirtVersion() throws(LibvirtError) -> String {
        var version: UInt = 0
        guard lv.virConnectGetLibVersion(handle, &version) == 0 else {
            throw LibvirtError.last("asking \(uri) for its version")
        }
        return "\(version / 1_000_000).\(version / 1000 % 1000).\(version % 1000)"
    }

    /// The host's capabilities XML: its CPU and which guests (qemu, kvm) its QEMU can run.
    public func capabilities() throws(LibvirtError) -> String {
        guard let xml = lv.virConnectGetCapabilities(handle) else {
            throw LibvirtError.last("asking \(uri) for its capabilities")
        }
        defer { free(xml) }
        return String(cString: xml)
    }

    /// Names of every domain the connection knows, running or not.
    public func domainNames() throws(LibvirtError) -> [String] {
        var domains: UnsafeMutablePointer<virDomainPtr?>?
        let count = lv.virConnectListAllDomains(handle, &domains, 0)
        guard count >= 0, let domains else {
            throw LibvirtError.last("listing the domains of \(uri)")
        }
        defer { free(domains) }
        var names: [String] = []
        for index in 0..<Int(count) {
            guard let domain = domains[index] else { continue }
            if let name = lv.virDomainGetName(domain) { names.append(String(cString: name)) }
            _ = lv.virDomainFree(domain)
        }
        return names.sorted()
    }
}
