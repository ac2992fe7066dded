import CLibvirt

/// libvirt's client library, opened at the first connection (table.h says why not at
/// start-up). Every libvirt call in this module goes through `lv`.
enum Libvirt {
    /// The table, or why the library could not be opened; worked out once, by the first thread
    /// that asks (a global's initializer runs once).
    static let loaded: Result<MachineLibvirt, LibvirtError> = {
        let table = UnsafeMutablePointer<MachineLibvirt>.allocate(capacity: 1)
        if let failure = machine_libvirt_load(table) {
            table.deallocate()
            return .failure(LibvirtError(code: LibvirtError.libraryUnusable, domain: 0,
                                         message: "libvirt's client library cannot be used: \(String(cString: failure))",
                                         operation: "loading libvirt"))
        }
        // Kept for the life of the process, like the libraries it points into.
        return .success(table.pointee)
    }()

    /// Throws when the library cannot be opened: called before the first connection.
    static func require() throws(LibvirtError) {
        if case .failure(let error) = loaded { throw error }
    }
}

/// The libvirt functions. Only reached once a connection was made (`Libvirt.require()` passed):
/// every handle a call takes comes from one.
var lv: MachineLibvirt {
    switch Libvirt.loaded {
    case .success(let table): return table
    case .failure(let error): preconditionFailure("libvirt called before it was loaded: \(error)")
    }
}
