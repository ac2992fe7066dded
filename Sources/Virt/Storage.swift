import CLibvirt
import Foundation
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
        virStoragePoolFree(handle)
    }

    public var name: String {
        virStoragePoolGetName(handle).map { String(cString: $0) } ?? ""
    }

    /// Whether it is started (libvirt serves its volumes only then).
    public func isActive() throws(LibvirtError) -> Bool {
        let active = virStoragePoolIsActive(handle)
        guard active >= 0 else { throw LibvirtError.last("asking whether the pool \(name) is started") }
        return active == 1
    }

    /// Starts a defined pool that is not running (as after the libvirt host rebooted).
    public func start() throws(LibvirtError) {
        guard virStoragePoolCreate(handle, 0) == 0 else {
            throw LibvirtError.last("starting the storage pool \(name)")
        }
    }

    /// Reads the folder again, so volumes made outside libvirt are seen.
    public func refresh() throws(LibvirtError) {
        guard virStoragePoolRefresh(handle, 0) == 0 else {
            throw LibvirtError.last("refreshing the storage pool \(name)")
        }
    }

    /// The folder on the libvirt host, from the pool's own definition.
    public func path() throws(LibvirtError) -> String? {
        guard let xml = virStoragePoolGetXMLDesc(handle, 0) else {
            throw LibvirtError.last("reading the definition of the storage pool \(name)")
        }
        defer { free(xml) }
        let text = String(cString: xml)
        guard let start = text.range(of: "<path>"), let end = text.range(of: "</path>", range: start.upperBound..<text.endIndex) else {
            return nil
        }
        return String(text[start.upperBound..<end.lowerBound])
    }

    /// Stops it and forgets it; its folder and files stay on the libvirt host.
    public func destroyAndUndefine() throws(LibvirtError) {
        if try isActive(), virStoragePoolDestroy(handle) != 0 {
            throw LibvirtError.last("stopping the storage pool \(name)")
        }
        // A transient pool is gone once stopped; only a defined one can be undefined.
        if virStoragePoolIsPersistent(handle) == 1, virStoragePoolUndefine(handle) != 0 {
            throw LibvirtError.last("removing the storage pool \(name)")
        }
    }

    /// The volume of that name, or nil if the pool has none.
    public func volume(named name: String) throws(LibvirtError) -> StorageVolume? {
        guard let volume = virStorageVolLookupByName(handle, name) else {
            let error = LibvirtError.last("looking for the volume \(name) in the pool \(self.name)")
            if error.code == Int32(VIR_ERR_NO_STORAGE_VOL.rawValue) { return nil }
            throw error
        }
        return StorageVolume(handle: volume, pool: self)
    }

    /// Names of the volumes in it, sorted.
    public func volumeNames() throws(LibvirtError) -> [String] {
        var volumes: UnsafeMutablePointer<virStorageVolPtr?>?
        let count = virStoragePoolListAllVolumes(handle, &volumes, 0)
        guard count >= 0, let volumes else {
            throw LibvirtError.last("listing the volumes of the pool \(name)")
        }
        defer { free(volumes) }
        var names: [String] = []
        for index in 0..<Int(count) {
            guard let volume = volumes[index] else { continue }
            if let name = virStorageVolGetName(volume) { names.append(String(cString: name)) }
            virStorageVolFree(volume)
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
        guard let volume = virStorageVolCreateXML(handle, xml, 0) else {
            throw LibvirtError.last("making the volume \(name) in the pool \(self.name)")
        }
        return StorageVolume(handle: volume, pool: self)
    }

    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "'", with: "&apos;")
    }
}

extension Connection {
    /// The pool of that name, or nil if the libvirt host has none.
    public func storagePool(named name: String) throws(LibvirtError) -> StoragePool? {
        guard let pool = virStoragePoolLookupByName(handle, name) else {
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
            guard let pool = virStoragePoolCreateXML(handle, xml, UInt32(VIR_STORAGE_POOL_CREATE_WITH_BUILD.rawValue)) else {
                throw LibvirtError.last(operation)
            }
            return StoragePool(handle: pool, connection: self)
        }
        guard let defined = virStoragePoolDefineXML(handle, xml, 0) else { throw LibvirtError.last(operation) }
        let pool = StoragePool(handle: defined, connection: self)
        guard virStoragePoolCreate(defined, UInt32(VIR_STORAGE_POOL_CREATE_WITH_BUILD.rawValue)) == 0,
              virStoragePoolSetAutostart(defined, 1) == 0 else {
            let error = LibvirtError.last(operation)
            virStoragePoolUndefine(defined)
            throw error
        }
        return pool
    }
}

// Linux's lseek whences for sparse files (<unistd.h> defines them only with _GNU_SOURCE).
private let seekData: Int32 = 3
private let seekHole: Int32 = 4

/// A file in a storage pool, on the libvirt host.
public final class StorageVolume {
    let handle: virStorageVolPtr
    public let pool: StoragePool

    init(handle: virStorageVolPtr, pool: StoragePool) {
        self.handle = handle
        self.pool = pool
    }

    deinit {
        virStorageVolFree(handle)
    }

    public var name: String {
        virStorageVolGetName(handle).map { String(cString: $0) } ?? ""
    }

    /// Its path on the libvirt host: what a domain definition there names.
    public func path() throws(LibvirtError) -> String {
        guard let path = virStorageVolGetPath(handle) else {
            throw LibvirtError.last("asking for the path of the volume \(name)")
        }
        defer { free(path) }
        return String(cString: path)
    }

    /// Its size as the guest sees it, in bytes.
    public func capacity() throws(LibvirtError) -> UInt64 {
        var info = virStorageVolInfo()
        guard virStorageVolGetInfo(handle, &info) == 0 else {
            throw LibvirtError.last("reading the size of the volume \(name)")
        }
        return UInt64(info.capacity)
    }

    /// Removes it from the libvirt host.
    public func delete() throws(LibvirtError) {
        guard virStorageVolDelete(handle, 0) == 0 else {
            throw LibvirtError.last("removing the volume \(name)")
        }
    }

    /// Replaces its bytes with the file's, through the libvirt connection. `progress` gets the
    /// bytes done so far, now and then. A sparse file goes as a sparse stream: its holes cross
    /// as their length alone and stay holes on the libvirt host (an ext4 image is a quarter holes).
    public func upload(from file: URL, progress: (UInt64) -> Void = { _ in }) throws(LibvirtError) {
        let operation = "uploading \(file.lastPathComponent) to the volume \(name)"
        func systemError() -> LibvirtError {
            LibvirtError(code: 0, domain: 0, message: String(cString: strerror(errno)), operation: operation)
        }
        let descriptor = open(file.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw systemError() }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw systemError() }
        let size = UInt64(info.st_size)
        guard let stream = virStreamNew(pool.connection.handle, 0) else { throw LibvirtError.last(operation) }
        defer { virStreamFree(stream) }
        guard virStorageVolUpload(handle, stream, 0, size, UInt32(VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM.rawValue)) == 0 else {
            throw LibvirtError.last(operation)
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var position: UInt64 = 0
        do throws(LibvirtError) {
            while position < size {
                // The next data from here; all that lies before it is a hole (SEEK_DATA fails
                // with ENXIO when only a hole is left, up to the end).
                var data = lseek(descriptor, off_t(position), seekData)
                if data < 0 {
                    guard errno == ENXIO else { throw systemError() }
                    data = off_t(size)
                }
                if UInt64(data) > position {
                    guard virStreamSendHole(stream, Int64(UInt64(data) - position), 0) == 0 else { throw LibvirtError.last(operation) }
                    position = UInt64(data)
                    progress(position)
                    continue
                }
                let hole = UInt64(max(lseek(descriptor, off_t(position), seekHole), off_t(position)))
                guard lseek(descriptor, off_t(position), SEEK_SET) >= 0 else { throw systemError() }
                var left = min(hole, size) - position
                while left > 0 {
                    let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, min($0.count, Int(left))) }
                    if count < 0 { throw systemError() }
                    if count == 0 { left = 0; break }
                    var offset = 0
                    while offset < count {
                        let written = buffer.withUnsafeBytes { bytes in
                            virStreamSend(stream, bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: CChar.self), count - offset)
                        }
                        guard written > 0 else { throw LibvirtError.last(operation) }
                        offset += Int(written)
                    }
                    position += UInt64(count)
                    left -= UInt64(count)
                    progress(position)
                }
            }
        } catch {
            virStreamAbort(stream)
            throw error
        }
        guard virStreamFinish(stream) == 0 else { throw LibvirtError.last(operation) }
    }

    /// Grows it to `capacity` bytes (a qcow2 data disk: the guest sees the new size at its next boot).
    public func resize(to capacity: UInt64) throws(LibvirtError) {
        guard virStorageVolResize(handle, capacity, 0) == 0 else {
            throw LibvirtError.last("growing the volume \(name) to \(capacity) bytes")
        }
    }

    /// Its bytes from `offset` to its end, read through the libvirt connection (checks, small
    /// files, and what a log file on the libvirt host gained since the last read).
    public func download(from offset: UInt64 = 0) throws(LibvirtError) -> Data {
        let operation = "downloading the volume \(name)"
        guard let stream = virStreamNew(pool.connection.handle, 0) else { throw LibvirtError.last(operation) }
        defer { virStreamFree(stream) }
        guard virStorageVolDownload(handle, stream, offset, 0, 0) == 0 else { throw LibvirtError.last(operation) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { bytes in
                virStreamRecv(stream, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
            }
            if count == 0 { break }
            guard count > 0 else {
                let error = LibvirtError.last(operation)
                virStreamAbort(stream)
                throw error
            }
            data.append(contentsOf: buffer[0..<Int(count)])
        }
        guard virStreamFinish(stream) == 0 else { throw LibvirtError.last(operation) }
        return data
    }
}
