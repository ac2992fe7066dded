import Foundation
import Testing
import Virt

/// Files reaching the libvirt host through the API alone, as they must on a remote one. Against
/// the real daemon (libvirt's test driver cannot stream volumes); host setup starts it.
@Suite struct StorageTests {
    static let uri = "qemu:///system"
    static var daemonAnswers: Bool { (try? Connection(uri: uri)) != nil && getuid() == 0 }

    @Test(.enabled(if: daemonAnswers, "needs root and libvirtd (scripts/host-setup.sh starts it)"))
    func aFileUploadedToAVolumeComesBackWholeAndTheVolumeGoesWithDelete() throws {
        let connection = try Connection(uri: Self.uri)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("virt-pool-\(UUID().uuidString)")
        let name = "machine-test-\(UUID().uuidString.prefix(8))"
        #expect(try connection.storagePool(named: name) == nil)
        let pool = try connection.createDirectoryPool(name: name, path: folder.path, persistent: false)
        defer {
            try? pool.destroyAndUndefine()
            try? FileManager.default.removeItem(at: folder)
        }
        #expect(try pool.isActive())
        #expect(try pool.path() == folder.path)
        #expect(try connection.storagePool(named: name)?.name == name)

        // Three and a half buffers of bytes no two of which repeat in step with the buffer.
        let source = folder.deletingLastPathComponent().appendingPathComponent("\(name)-source")
        let bytes = Data((0..<(3 << 20 | 1 << 19)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 13) })
        try bytes.write(to: source)
        defer { try? FileManager.default.removeItem(at: source) }
        let volume = try pool.createVolume(name: "vmlinux", capacity: UInt64(bytes.count), format: .raw)
        var reported: [UInt64] = []
        try volume.upload(from: source) { reported.append($0) }
        #expect(reported.last == UInt64(bytes.count))
        #expect(try volume.download() == bytes)
        // What a log file gained since an earlier read; nothing at its end.
        #expect(try volume.download(from: 3 << 20) == bytes.suffix(from: 3 << 20))
        #expect(try volume.download(from: UInt64(bytes.count)) == Data())
        #expect(try volume.capacity() == UInt64(bytes.count))
        let path = try volume.path()
        #expect(path == folder.appendingPathComponent("vmlinux").path)
        #expect(FileManager.default.contents(atPath: path) == bytes)
        #expect(try pool.volumeNames() == ["vmlinux"])

        // A qcow2 data disk is made there, empty, at the size asked.
        let disk = try pool.createVolume(name: "data.qcow2", capacity: 1 << 30, format: .qcow2)
        #expect(try disk.capacity() == 1 << 30)
        #expect(try pool.volume(named: "data.qcow2") != nil)
        #expect(FileManager.default.contents(atPath: try disk.path())?.prefix(4) == Data([0x51, 0x46, 0x49, 0xfb]))  // "QFI\xfb", qcow2's magic
        try disk.resize(to: 2 << 30)
        #expect(try disk.capacity() == 2 << 30)

        try volume.delete()
        try disk.delete()
        #expect(try pool.volume(named: "vmlinux") == nil)
        #expect(try pool.volumeNames() == [])
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test(.enabled(if: daemonAnswers, "needs root and libvirtd (scripts/host-setup.sh starts it)"))
    func aSparseFileArrivesWholeAndKeepsItsHoles() throws {
        let scratch = try ScratchPool()
        defer { scratch.remove() }
        let pool = scratch.pool
        // Data, an 8 MiB hole, data, and a hole up to the end: like an ext4 image.
        let source = FileManager.default.temporaryDirectory.appendingPathComponent("sparse-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: source) }
        let head = Data((0..<(1 << 20) + 17).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let middle = Data(repeating: 0xA5, count: 3 << 20)
        let handle = try FileHandle(forWritingTo: { FileManager.default.createFile(atPath: source.path, contents: nil); return source }())
        try handle.write(contentsOf: head)
        try handle.seek(toOffset: UInt64(head.count) + (8 << 20))
        try handle.write(contentsOf: middle)
        try handle.truncate(atOffset: UInt64(head.count) + (8 << 20) + UInt64(middle.count) + (4 << 20))
        try handle.close()
        let size = UInt64(head.count) + (8 << 20) + UInt64(middle.count) + (4 << 20)

        let volume = try pool.createVolume(name: "engine.img", capacity: size, format: .raw)
        var reported: [UInt64] = []
        try volume.upload(from: source) { reported.append($0) }
        #expect(reported.last == size)
        #expect(try volume.download() == head + Data(count: 8 << 20) + middle + Data(count: 4 << 20))
        // The holes stayed holes there: about the data's 4 MiB is allocated, not 16.
        var info = stat()
        #expect(stat(try volume.path(), &info) == 0)
        #expect(Int(info.st_blocks) * 512 < 6 << 20, "\(info.st_blocks) blocks")
    }

    @Test(.enabled(if: daemonAnswers, "needs root and libvirtd (scripts/host-setup.sh starts it)"))
    func uploadingAMissingFileSaysWhichAndLeavesTheVolume() throws {
        let scratch = try ScratchPool()
        defer { scratch.remove() }
        let pool = scratch.pool
        let volume = try pool.createVolume(name: "initramfs.img", capacity: 4096, format: .raw)
        do {
            try volume.upload(from: URL(fileURLWithPath: "/nonexistent/initramfs.img"))
            Issue.record("uploading a missing file succeeded")
        } catch {
            #expect(error.description.contains("initramfs.img"))
            #expect(error.message.contains("No such file"))
        }
        #expect(try pool.volumeNames() == ["initramfs.img"])
    }
}

/// A transient pool in a folder of its own, for one test; `remove` takes both away.
struct ScratchPool {
    let pool: StoragePool
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("virt-pool-\(UUID().uuidString)")

    init() throws {
        pool = try Connection(uri: StorageTests.uri).createDirectoryPool(name: "machine-test-\(UUID().uuidString.prefix(8))",
                                                                          path: folder.path, persistent: false)
    }

    func remove() {
        try? pool.destroyAndUndefine()
        try? FileManager.default.removeItem(at: folder)
    }
}
