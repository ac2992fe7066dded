import FoundationEssentials
import HostOS
import Virt

/// A remote machine's files on its libvirt host, which shares no filesystem with us: volumes
/// in the storage pool `machine` there, made, filled and removed through the libvirt API alone.
///
/// - The image's kernel and initramfs and the engine's disk are uploaded once per build and
///   shared by every machine on that host (named by the build's folder, which names its content).
///   A build's volumes count only once its marker volume exists, made after the last byte
///   arrived: an upload cut short is made again, never booted.
/// - Each machine has its own data disk, seed and console log, named after its domain (which
///   carries its home's id, so two homes' machines never share one).
struct RemoteVolumes {
    static let poolName = "machine"
    /// Beside libvirt's own `images`; the system daemon's, the one remote machines use.
    static let poolPath = "/var/lib/libvirt/machine"

    let connection: Connection
    /// The libvirt host as messages name it (user@host:port).
    let host: String
    let domain: String
    let progress: (String) -> Void

    var dataDiskName: String { Self.dataDiskName(domain) }
    var seedName: String { Self.seedName(domain) }
    var consoleName: String { Self.consoleName(domain) }
    static func dataDiskName(_ domain: String) -> String { "\(domain)-data.qcow2" }
    static func seedName(_ domain: String) -> String { "\(domain)-seed.iso" }
    static func consoleName(_ domain: String) -> String { "\(domain)-console.log" }

    /// The pool, made (persistent, so it comes back when that host boots) or started if needed.
    func pool() throws(MachineError) -> StoragePool {
        do {
            if let pool = try connection.storagePool(named: Self.poolName) {
                if try !pool.isActive() { try pool.start() }
                return pool
            }
            return try connection.createDirectoryPool(name: Self.poolName, path: Self.poolPath, persistent: true)
        } catch {
            throw MachineError("cannot use the storage pool \(Self.poolName) on \(host): \(error.message)",
                               hint: "the account in the URI needs libvirt's write access there (root, or the libvirt group); `virsh -c '\(connection.uri)' pool-info \(Self.poolName)` shows the pool")
        }
    }

    /// The path on the libvirt host of `file`, uploaded there once for the build `build`
    /// (its cache folder's name).
    func shared(_ file: URL, build: String) throws(MachineError) -> String {
        let name = "\(build)-\(file.lastPathComponent)"
        let marker = name + ".complete"
        return try onPool("uploading \(file.lastPathComponent) to \(host)") { pool throws(LibvirtError) in
            if let volume = try pool.volume(named: name), try pool.volume(named: marker) != nil {
                return try volume.path()
            }
            try pool.volume(named: marker)?.delete()
            progress("uploading \(file.lastPathComponent) (\(Self.size(of: file) >> 20) MB) to \(host), once for this build")
            let volume = try Self.replace(name, in: pool, with: file)
            _ = try pool.createVolume(name: marker, capacity: 0, format: .raw)
            return try volume.path()
        }
    }

    /// The machine's data disk, made at `gibibytes` if it has none yet and grown to it if smaller.
    func dataDisk(gibibytes: Int) throws(MachineError) -> String {
        let capacity = UInt64(gibibytes) << 30
        return try onPool("preparing the data disk on \(host)") { pool throws(LibvirtError) in
            if let volume = try pool.volume(named: dataDiskName) {
                if try volume.capacity() < capacity {
                    progress("growing the data disk to \(gibibytes) GiB")
                    try volume.resize(to: capacity)
                }
                return try volume.path()
            }
            return try pool.createVolume(name: dataDiskName, capacity: capacity, format: .qcow2).path()
        }
    }

    /// What the data disk's file holds on the libvirt host, as `ls` and `inspect` show it; nil
    /// before it exists or when libvirt does not say.
    func dataDiskSpace() -> FileSpace? {
        // Looked up only: a look never makes or starts the pool.
        guard let pool = try? connection.storagePool(named: Self.poolName), let volume = try? pool.volume(named: dataDiskName),
              let space = try? volume.fileSpace() else { return nil }
        return FileSpace(apparentBytes: Int64(space.lengthBytes), allocatedBytes: Int64(space.heldBytes))
    }

    /// The seed, uploaded anew for this boot.
    func seed(from file: URL) throws(MachineError) -> String {
        try onPool("uploading the seed to \(host)") { pool throws(LibvirtError) in
            try Self.replace(seedName, in: pool, with: file).path()
        }
    }

    /// Where QEMU writes the console of the next boot: the earlier boot's log is removed first,
    /// so what ConsoleMirror reads is this boot's alone.
    func freshConsoleLog() throws(MachineError) -> String {
        let folder = try onPool("preparing the console log on \(host)") { pool throws(LibvirtError) in
            try pool.refresh()
            try pool.volume(named: consoleName)?.delete()
            return try pool.path()
        }
        guard let folder else { throw MachineError("the storage pool \(Self.poolName) on \(host) has no folder") }
        return folder + "/" + consoleName
    }

    /// The console log as QEMU has written it so far, from `offset` on (empty while QEMU has
    /// not made it yet).
    func consoleLog(from offset: UInt64) throws(MachineError) -> Data {
        try onPool("reading the console log on \(host)") { pool throws(LibvirtError) in
            // Made by QEMU outside libvirt's storage calls: seen after a refresh.
            if try pool.volume(named: consoleName) == nil { try pool.refresh() }
            return try pool.volume(named: consoleName)?.download(from: offset) ?? Data()
        }
    }

    /// Removes the machine's own volumes (data disk, seed, console log); the shared builds stay
    /// for the other machines on that host.
    func removeOwn() throws(MachineError) {
        guard (try? connection.storagePool(named: Self.poolName)) != nil else { return }
        try onPool("removing the volumes of \(domain) on \(host)") { pool throws(LibvirtError) in
            try pool.refresh()
            for name in [dataDiskName, seedName, consoleName] {
                try pool.volume(named: name)?.delete()
            }
        }
    }

    /// A raw volume `name` with the file's bytes, made anew (one of that name is removed first).
    private static func replace(_ name: String, in pool: StoragePool, with file: URL) throws(LibvirtError) -> StorageVolume {
        try pool.volume(named: name)?.delete()
        let volume = try pool.createVolume(name: name, capacity: size(of: file), format: .raw)
        try volume.upload(from: file)
        return volume
    }

    private static func size(of file: URL) -> UInt64 {
        HostPath.size(file.path)
    }

    private func onPool<T>(_ what: String, _ body: (StoragePool) throws(LibvirtError) -> T) throws(MachineError) -> T {
        let pool = try pool()
        do {
            return try body(pool)
        } catch {
            throw MachineError("\(what): \(error.message)")
        }
    }
}

/// Copies the console log of a machine on a remote libvirt host into its local console.log
/// while a boot is watched, so the boot watcher, host-key pinning and `machine logs` read it
/// as they read a local one.
final class ConsoleMirror: @unchecked Sendable {
    private let volumes: RemoteVolumes
    private let destination: URL
    private let lock = Lock()
    private var running = true

    init(volumes: RemoteVolumes, destination: URL) {
        self.volumes = volumes
        self.destination = destination
    }

    /// Starts copying, from the beginning of the remote log into an empty local one.
    func start() {
        _ = FileManager.default.createFile(atPath: destination.path, contents: nil, attributes: [.posixPermissions: 0o600])
        Threads.detach { [self] in
            var offset: UInt64 = 0
            while isRunning {
                if let data = try? volumes.consoleLog(from: offset), !data.isEmpty, BoundedLog.append(data, to: destination.path) {
                    offset += UInt64(data.count)
                }
                Threads.sleep(0.25)
            }
        }
    }

    private var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return running
    }

    func stop() {
        lock.lock()
        running = false
        lock.unlock()
    }
}

/// A remote machine's boot files as paths on its libvirt host, uploaded before the boot; what
/// its domain definition names instead of this host's files.
struct RemotePlacement {
    let volumes: RemoteVolumes
    let kernel: String
    let initramfs: String
    let engineDisk: String?
    let dataDisk: String
    let seed: String

    init(volumes: RemoteVolumes, config: MachineConfig, files: MachineFiles, image: GuestImage, engine: EngineBundle,
         engineDisk localEngineDisk: URL?) throws(MachineError) {
        self.volumes = volumes
        let imageBuild = "image-" + image.folder.lastPathComponent
        kernel = try volumes.shared(image.kernel, build: imageBuild)
        initramfs = try volumes.shared(image.initramfs, build: imageBuild)
        engineDisk = try localEngineDisk.map { (disk: URL) throws(MachineError) -> String in
            try volumes.shared(disk, build: "engine-" + engine.folder.lastPathComponent)
        }
        dataDisk = try volumes.dataDisk(gibibytes: config.diskGiB)
        seed = try volumes.seed(from: files.seed)
    }

    /// `definition` with every file on the libvirt host, and a console log made fresh there.
    func applied(to definition: DomainDefinition) throws(MachineError) -> DomainDefinition {
        var definition = definition
        guard case let .kernel(_, _, commandLine) = definition.boot else {
            throw MachineError("a remote machine boots the built image's kernel only")
        }
        definition.boot = .kernel(kernel: kernel, initrd: initramfs, commandLine: commandLine)
        definition.engineDisk = engineDisk
        definition.dataDisk = dataDisk
        definition.seed = seed
        definition.consoleLog = try volumes.freshConsoleLog()
        definition.processOwner = nil
        return definition
    }
}
