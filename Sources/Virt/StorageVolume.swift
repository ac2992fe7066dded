import CLibvirt
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

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
        _ = lv.virStorageVolFree(handle)
    }

    public var name: String {
        lv.virStorageVolGetName(handle).map { String(cString: $0) } ?? ""
    }

    /// Its path on the libvirt host: what a domain definition there names.
    public func path() throws(LibvirtError) -> String {
        guard let path = lv.virStorageVolGetPath(handle) else {
            throw LibvirtError.last("asking for the path of the volume \(name)")
        }
        defer { free(path) }
        return String(cString: path)
    }

    /// Its size as the guest sees it, in bytes.
    public func capacity() throws(LibvirtError) -> UInt64 {
        var info = virStorageVolInfo()
        guard lv.virStorageVolGetInfo(handle, &info) == 0 else {
            throw LibvirtError.last("reading the size of the volume \(name)")
        }
        return UInt64(info.capacity)
    }

    /// Its file on the libvirt host: its length and the bytes it holds there (a qcow2 disk
    /// whose guest trims holds less than its length).
    public func fileSpace() throws(LibvirtError) -> (lengthBytes: UInt64, heldBytes: UInt64) {
        var info = virStorageVolInfo()
        guard lv.virStorageVolGetInfo(handle, &info) == 0 else {
            throw LibvirtError.last("reading the allocation of the volume \(name)")
        }
        var physical = virStorageVolInfo()
        let length = lv.virStorageVolGetInfoFlags(handle, &physical, UInt32(VIR_STORAGE_VOL_GET_PHYSICAL.rawValue)) == 0
            ? UInt64(physical.allocation) : UInt64(info.capacity)
        return (length, UInt64(info.allocation))
    }

    /// Removes it from the libvirt host.
    public func delete() throws(LibvirtError) {
        guard lv.virStorageVolDelete(handle, 0) == 0 else {
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
        guard let stream = lv.virStreamNew(pool.connection.handle, 0) else { throw LibvirtError.last(operation) }
        defer { _ = lv.virStreamFree(stream) }
        guard lv.virStorageVolUpload(handle, stream, 0, size, UInt32(VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM.rawValue)) == 0 else {
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
                    guard lv.virStreamSendHole(stream, Int64(UInt64(data) - position), 0) == 0 else { throw LibvirtError.last(operation) }
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
                            lv.virStreamSend(stream, bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: CChar.self), count - offset)
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
            _ = lv.virStreamAbort(stream)
            throw error
        }
        guard lv.virStreamFinish(stream) == 0 else { throw LibvirtError.last(operation) }
    }

    /// Grows it to `capacity` bytes (a qcow2 data disk: the guest sees the new size at its next boot).
    public func resize(to capacity: UInt64) throws(LibvirtError) {
        guard lv.virStorageVolResize(handle, capacity, 0) == 0 else {
            throw LibvirtError.last("growing the volume \(name) to \(capacity) bytes")
        }
    }

    /// Its bytes from `offset` to its end, read through the libvirt connection (checks, small
    /// files, and what a log file on the libvirt host gained since the last read).
    public func download(from offset: UInt64 = 0) throws(LibvirtError) -> Data {
        let operation = "downloading the volume \(name)"
        guard let stream = lv.virStreamNew(pool.connection.handle, 0) else { throw LibvirtError.last(operation) }
        defer { _ = lv.virStreamFree(stream) }
        guard lv.virStorageVolDownload(handle, stream, offset, 0, 0) == 0 else { throw LibvirtError.last(operation) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { bytes in
                lv.virStreamRecv(stream, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
            }
            if count == 0 { break }
            guard count > 0 else {
                let error = LibvirtError.last(operation)
                _ = lv.virStreamAbort(stream)
                throw error
            }
            data.append(contentsOf: buffer[0..<Int(count)])
        }
        guard lv.virStreamFinish(stream) == 0 else { throw LibvirtError.last(operation) }
        return data
    }
}
