import CLibvirt
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// A libvirt storage pool: a place on the libvirt host (a folder, for the pools machine uses)
/// whose files, volumes, are made, filled and removed through the API alone. This is how files
/// reach a libvirt host that shares no filesystem with us (qemu+ssh://).
public final class StoragePool {
    let handle: virStoragePoolPtr
    public let connection: Connection

    init(handle: virStoragePoolPtr, connection: Connection) {
        self.handle = handle
        self.connection = connection
    }

    deinit {
        _ = lv.virStoragePoolFree(handle)
    }

    public var name: String {
        lv.virStoragePoolGetName(handle).map { String(cString: $0) } ?? ""
    }

    /// Whether it is started (libvirt serves its volumes only then).
    public func isActive() throws(LibvirtError) -> Bool {
        let active = lv.virStoragePoolIsActive(handle)
        guard active >= 0 else { throw LibvirtError.last("asking whether the pool \(name) is started") }
        return active == 1
    }

    /// Starts a defined pool that is not running (as after the libvirt host rebooted).
    public func start() throws(LibvirtError) {
        guard lv.virStoragePoolCreate(handle, 0) == 0 else {
            throw LibvirtError.last("starting the storage pool \(name)")
        }
    }

    /// Reads the folder again, so volumes made outside libvirt are seen.
    public func refresh() throws(LibvirtError) {
        guard lv.virStoragePoolRefresh(handle, 0) == 0 else {
            throw LibvirtError.last("refreshing the storage pool \(name)")
        }
    }

    /// The folder on the libvirt host, from the pool's own definition.
    public func path() throws(LibvirtError) -> String? {
        guard let xml = lv.virStoragePoolGetXMLDesc(handle, 0) else {
            throw LibvirtError.last("reading the definition of the storage pool \(name)")
        }
        defer { free(xml) }
        let text = String(cString: xml)
        guard let start = text.firstRange(of: "<path>"), let end = text[start.upperBound...].firstRange(of: "</path>") else {
            return nil
        }
        return String(text[start.upperBound..<end.lowerBound])
    }

    /// Stops it and forgets it; its folder and files stay on the libvirt host.
    public func destroyAndUndefine() throws(LibvirtError) {
        if try isActive(), lv.virStoragePoolDestroy(handle) != 0 {
            throw LibvirtError.last("stopping the storage pool \(name)")
        }
        // A transient pool is gone once stopped; only a defined one can be undefined.
        if lv.virStoragePoolIsPersistent(handle) == 1, lv.virStoragePoolUndefine(handle) != 0 {
            throw LibvirtError.last("removing the storage pool \(name)")
        }
    }

    /// The volume of that name, or nil if the pool has none.
    public func volume(named name: String) throws(LibvirtError) -> StorageVolume? {
        guard let volume = lv.virStorageVolLookupByName(handle, name) else {
            let error = LibvirtError.last("looking for the volume \(name) in the pool \(self.name)")
            if error.code == Int32(VIR_ERR_NO_STORAGE_VOL.rawValue) { return nil }
            throw error
        }
        return StorageVolume(handle: volume, pool: self)
    }

    /// Names of the volumes in it, sorted.
    public func volumeNames() throws(LibvirtError) -> [String] {
        var volumes: UnsafeMutablePointer<virStorageVolPtr?>?
        let count = lv.virStoragePoolListAllVolumes(handle, &volumes, 0)
        guard count >= 0, let volumes else {
            throw LibvirtError.last("listing the volumes of the pool \(name)")
        }
        defer { free(volumes) }
        var names: [String] = []
        for index in 0..<Int(count) {
            guard let volume = volumes[index] else { continue }
            if let name = lv.virStorageVolGetName(volume) { names.append(String(cString: name)) }
            _ = lv.virStorageVolFree(volume)
        }
        return names.sorted()
    }

    /// How a new volume's bytes are laid out on the libvirt host.
    public enum Format: String, Sendable {
        /// The bytes as they are (kernels, initramfs, ISO and engine images).
        case raw
        /// A qcow2 image that grows as the guest writes (data disks).
        case qcow2
    }

    /// Makes an empty volume of `capacity` bytes (a raw one is filled by `upload`).
    public func createVolume(name: String, capacity: UInt64, format: Format) throws(LibvirtError) -> StorageVolume {
        let xml = """
            <volume><name>\(Self.escaped(name))</name><capacity unit='bytes'>\(capacity)</capacity>\
            <allocation unit='bytes'>0</allocation><target><format type='\(format.rawValue)'/>\
            <permissions><mode>0600</mode></permissions></target></volume>
            """
        guard let volume = lv.virStorageVolCreateXML(handle, xml, 0) else {
            throw LibvirtError.last("making the volume \(name) in the pool \(self.name)")
        }
        return StorageVolume(handle: volume, pool: self)
    }

    static func escaped(_ text: String) -> String {
        text.replacing("&", with: "&amp;").replacing("<", with: "&lt;")
            .replacing(">", with: "&gt;").replacing("'", with: "&apos;")
    }
}

extension Connection {
    /// The pool of that name, or nil if the libvirt host has none.
    public func storagePool(named name: String) throws(LibvirtError) -> StoragePool? {
        guard let pool = lv.virStoragePoolLookupByName(handle, name) else {
            let error = LibvirtError.last("looking for the storage pool \(name) on \(uri)")
            if error.code == Int32(VIR_ERR_NO_STORAGE_POOL.rawValue) { return nil }
            throw error
        }
        return StoragePool(handle: pool, connection: self)
    }

    /// A pool on a folder of the libvirt host, made there if missing (mode 0711: QEMU, running
    /// as another user there, reaches the files it is given, and no one can list them).
    /// `persistent`: defined, started and started again when the libvirt host boots; else
    /// transient, gone when stopped (tests).
    public func createDirectoryPool(name: String, path: String, persistent: Bool) throws(LibvirtError) -> StoragePool {
        let xml = """
            <pool type='dir'><name>\(StoragePool.escaped(name))</name><target><path>\(StoragePool.escaped(path))</path>\
            <permissions><mode>0711</mode></permissions></target></pool>
            """
        let operation = "making the storage pool \(name) at \(path) on \(uri)"
        guard persistent else {
            guard let pool = lv.virStoragePoolCreateXML(handle, xml, UInt32(VIR_STORAGE_POOL_CREATE_WITH_BUILD.rawValue)) else {
                throw LibvirtError.last(operation)
            }
            return StoragePool(handle: pool, connection: self)
        }
        guard let defined = lv.virStoragePoolDefineXML(handle, xml, 0) else { throw LibvirtError.last(operation) }
        let pool = StoragePool(handle: defined, connection: self)
        guard lv.virStoragePoolCreate(defined, UInt32(VIR_STORAGE_POOL_CREATE_WITH_BUILD.rawValue)) == 0,
              lv.virStoragePoolSetAutostart(defined, 1) == 0 else {
            let error = LibvirtError.last(operation)
            _ = lv.virStoragePoolUndefine(defined)
            throw error
        }
        return pool
    }
}
