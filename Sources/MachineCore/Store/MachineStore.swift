import FoundationEssentials
import HostOS

/// The machines under `$MACHINE_HOME/machines`: their folders, configs and the files made at
/// create (SSH key pair, data disk, seed). Knows nothing of libvirt.
public struct MachineStore: Sendable {
    public let paths: Paths

    public init(paths: Paths) {
        self.paths = paths
    }

    public var machinesFolder: URL { paths.home.appendingPathComponent("machines") }

    public func files(_ name: String) -> MachineFiles {
        MachineFiles(folder: machinesFolder.appendingPathComponent(name))
    }

    public func exists(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: files(name).config.path)
    }

    public func config(_ name: String) throws(MachineError) -> MachineConfig {
        guard exists(name) else {
            throw MachineError("no machine named \"\(name)\"",
                               hint: "create it with `machine create \(name)`, or see `machine ls`", kind: .notFound)
        }
        return try MachineConfig.load(files(name).config)
    }

    /// Every machine folder, each with its config or the reason it cannot be read, so one
    /// broken machine does not hide the others.
    public func all() -> [(name: String, config: Result<MachineConfig, MachineError>)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: machinesFolder.path)) ?? []
        return names.sorted().filter { !$0.hasPrefix(".") }.map { name in
            (name, Result { () throws(MachineError) -> MachineConfig in try MachineConfig.load(files(name).config) })
        }
    }

    /// Makes the folder, key pair, data disk and config of a new machine. On failure nothing
    /// is left behind.
    public func create(_ config: MachineConfig) throws(MachineError) -> MachineFiles {
        try MachineName.validate(config.name)
        let files = files(config.name)
        let socketProbe = files.folder.appendingPathComponent("docker.sock").path
        guard socketProbe.utf8.count <= Paths.maxSocketPathBytes else {
            throw MachineError("the machine folder path is too long for a unix socket (\(socketProbe.utf8.count) bytes, at most \(Paths.maxSocketPathBytes))",
                               hint: "set MACHINE_HOME to a shorter folder, e.g. ~/.machine")
        }
        if let iso = config.iso {
            var isFolder = false
            guard DomainDefinition.isRepresentable(path: iso),
                  FileManager.default.fileExists(atPath: iso, isDirectory: &isFolder), !isFolder
            else {
                throw MachineError("no ISO file at \(iso)", hint: "give the full path of a bootable ISO", kind: .usage)
            }
        }
        guard DomainDefinition.isRepresentable(path: files.folder.path) else {
            throw MachineError("MACHINE_HOME contains control characters", hint: "set MACHINE_HOME to an ordinary path")
        }
        do {
            try FileManager.default.createDirectory(at: machinesFolder, withIntermediateDirectories: true)
        } catch {
            throw MachineError("cannot create \(machinesFolder.path): \(error.explanation)")
        }
        do {
            try HostPath.makeFolder(files.folder.path, mode: 0o700)
        } catch {
            if error.isAlreadyThere {
                throw MachineError("a machine named \"\(config.name)\" already exists",
                                   hint: "start it with `machine start \(config.name)`, or pick another name")
            }
            throw MachineError("cannot create \(files.folder.path): \(HostPath.reason(error.code))")
        }
        do {
            let lock = try MachineLock(files: files, name: config.name)
            try Subprocess.output(of: ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "machine-\(config.name)",
                                  "-f", files.privateKey.path], what: "making the SSH key pair")
            // Both halves owner-only, like the rest of the machine's folder.
            try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: files.publicKey.path)
            // A remote machine's data disk is a volume on its libvirt host, made at its first boot.
            if config.connect == nil {
                try Subprocess.output(of: ["qemu-img", "create", "-q", "-f", "qcow2", files.dataDisk.path, "\(config.diskGiB)G"],
                                      what: "creating the data disk")
            }
            // The seed carries the engine's TLS files: they are made first.
            if config.tlsPort != nil { try EngineTLS.make(files, name: config.name) }
            try writeSeed(config, files: files)
            try AtomicFile.save(config.encoded(), to: files.config, mode: 0o600)
            _ = lock
        } catch {
            try? FileManager.default.removeItem(at: files.folder)
            throw error
        }
        return files
    }

    /// The seed (config drive) the guest reads at boot: who may log in, its hostname, the
    /// shares to mount and the paths inside them to cover, the engine's settings, and the host ports of the agent's
    /// sessions (which the guest keeps its containers from reaching). Written at create and
    /// before every boot; the image is only remade when its content changed.
    public func writeSeed(_ config: MachineConfig, files: MachineFiles, shares: [SharedFolder] = [], hidden: [String] = [],
                          agentInputPorts: [Int] = [], hostResolverPort: Int? = nil) throws(MachineError) {
        let publicKey: Data
        do {
            publicKey = try Data(contentsOf: files.publicKey)
        } catch {
            throw MachineError("cannot read \(files.publicKey.path): \(error.explanation)", hint: "recreate the machine")
        }
        let content: [(String, Data)] = [
            (GuestContract.authorizedKeysSeedFile, publicKey),
            (GuestContract.hostnameSeedFile, Data((config.name + "\n").utf8)),
            (GuestContract.mountsSeedFile, Data(Shares.seedMounts(shares).utf8)),
            (GuestContract.hiddenSeedFile, Data(hidden.map { $0 + "\n" }.joined().utf8)),
            (GuestContract.engineDaemonSeedFile, config.daemonJSON),
            (GuestContract.hostAccessSeedFile, Data((config.hostAccess ? "on\n" : "off\n").utf8)),
            (GuestContract.engineEnvironmentSeedFile, config.engine.environmentFile()),
            (GuestContract.platformsSeedFile, EmulatedPlatforms.seedFile(config.platforms)),
        ] + (agentInputPorts.isEmpty ? [] : [(GuestContract.agentInputPortSeedFile, Data(agentInputPorts.map { "\($0)\n" }.joined().utf8))])
            + (hostResolverPort.map { [(GuestContract.hostResolverPortSeedFile, Data("\($0)\n".utf8))] } ?? [])
            + (try engineTLSSeed(config, files: files))
            + HostTrust.seedFiles(dockerConfig: Self.dockerConfigFolder())
        let fm = FileManager.default
        let seedPaths = Set(HostTrust.regularFiles(under: files.seedFolder).map { String($0.path.dropFirst(files.seedFolder.path.count + 1)) })
        let unchanged = fm.fileExists(atPath: files.seed.path) && content.allSatisfy { name, data in
            (try? Data(contentsOf: files.seedFolder.appendingPathComponent(name))) == data
        } && seedPaths == Set(content.map(\.0))
        if unchanged { return }
        try? fm.removeItem(at: files.seedFolder)
        do {
            try fm.createDirectory(at: files.seedFolder, withIntermediateDirectories: true)
            for (name, data) in content {
                let url = files.seedFolder.appendingPathComponent(name)
                try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                // Client keys of registries (certs.d) are the user's secrets: 0600 like the rest.
                guard fm.createFile(atPath: url.path, contents: data, attributes: [.posixPermissions: 0o600]) else {
                    throw SystemError.last("create \(url.path)")
                }
            }
        } catch {
            throw MachineError("cannot write the seed in \(files.seedFolder.path): \(error.explanation)")
        }
        let temp = files.folder.appendingPathComponent(".seed.iso.tmp")
        try Subprocess.output(of: ["xorriso", "-as", "mkisofs", "-quiet", "-V", "MACHINE_SEED", "-J", "-R",
                              "-o", temp.path, files.seedFolder.path], what: "making the seed image")
        do {
            try HostPath.rename(temp.path, to: files.seed.path)
        } catch {
            throw MachineError("cannot move the seed into place: \(HostPath.reason(error.code))")
        }
    }

    /// The engine's TLS files for the seed, when the machine has the endpoint.
    func engineTLSSeed(_ config: MachineConfig, files: MachineFiles) throws(MachineError) -> [(String, Data)] {
        guard config.tlsPort != nil else { return [] }
        var content: [(String, Data)] = []
        for (name, url) in EngineTLS.serverFiles(files) {
            guard let data = try? Data(contentsOf: url) else {
                throw MachineError("the engine's TLS file \(url.path) is missing", hint: "`machine regenerate-certs \(config.name)` makes new ones")
            }
            content.append((name, data))
        }
        return content
    }

    /// Deletes the machine's own folder and nothing else: the folder is found by name under
    /// machinesFolder, never through a link.
    public func remove(_ name: String) throws(MachineError) {
        try MachineName.validate(name)
        let folder = files(name).folder
        guard HostPath.exists(folder.path, followingLinks: false) else { return }
        guard HostPath.isFolder(folder.path, followingLinks: false) else {
            throw MachineError("\(folder.path) is not a folder; not removing it", hint: "look at it and remove it by hand")
        }
        do {
            try FileManager.default.removeItem(at: folder)
        } catch {
            throw MachineError("cannot remove \(folder.path): \(error.explanation)")
        }
    }

    /// Refuses a data disk that points at other files: a qcow2 with a backing file or an
    /// external data file would make QEMU open host files the user never handed to the VM.
    /// Returns the disk's size as the guest sees it, in bytes.
    @discardableResult
    public func checkDataDisk(_ files: MachineFiles) throws(MachineError) -> Int64 {
        let result = try Subprocess.outcome(of: ["qemu-img", "info", "--output=json", "-U", files.dataDisk.path], timeout: 30)
        guard result.status == 0 else {
            throw MachineError("cannot read the data disk \(files.dataDisk.path): \(result.output.trimmed())")
        }
        struct Info: Decodable {
            let format: String
            let virtualSize: Int64
            let backingFilename: String?
            let formatSpecific: Specific?
            enum CodingKeys: String, CodingKey {
                case format
                case virtualSize = "virtual-size"
                case backingFilename = "backing-filename"
                case formatSpecific = "format-specific"
            }
            struct Specific: Decodable {
                let data: Details?
                struct Details: Decodable {
                    let dataFile: String?
                    enum CodingKeys: String, CodingKey { case dataFile = "data-file" }
                }
            }
        }
        guard let info = try? JSONDecoder().decode(Info.self, from: Data(result.output.utf8)) else {
            throw MachineError("cannot understand qemu-img's description of \(files.dataDisk.path)")
        }
        guard info.format == "qcow2" else {
            throw MachineError("the data disk \(files.dataDisk.path) is \(info.format), not qcow2", hint: "restore the machine's own disk or recreate the machine")
        }
        if let backing = info.backingFilename {
            throw MachineError("the data disk \(files.dataDisk.path) has a backing file (\(backing)); refusing to boot it",
                               hint: "a machine's disk must stand alone: flatten it with `qemu-img convert -O qcow2` or recreate the machine")
        }
        if let dataFile = info.formatSpecific?.data?.dataFile {
            throw MachineError("the data disk \(files.dataDisk.path) keeps its data in an external file (\(dataFile)); refusing to boot it",
                               hint: "a machine's disk must stand alone: flatten it with `qemu-img convert -O qcow2` or recreate the machine")
        }
        return info.virtualSize
    }

    /// Grows the (stopped) machine's data disk to `gibibytes`; the guest grows its filesystem
    /// at the next boot. Never shrinks.
    public func growDataDisk(_ files: MachineFiles, to gibibytes: Int) throws(MachineError) {
        try Subprocess.output(of: ["qemu-img", "resize", "-q", files.dataDisk.path, "\(gibibytes)G"], timeout: 60,
                              what: "growing the data disk \(files.dataDisk.path)")
    }

    /// The docker CLI's own folder (DOCKER_CONFIG, else ~/.docker), whose certs.d the engine
    /// in the guest gets.
    static func dockerConfigFolder() -> URL {
        if let folder = ProcessInfo.processInfo.environment["DOCKER_CONFIG"], !folder.isEmpty {
            return URL(fileURLWithPath: folder)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".docker")
    }

    /// A free TCP port on 127.0.0.1 for the machine's SSH forward.
    static func freeLoopbackPort() throws(MachineError) -> Int {
        try onHost { () throws(SystemError) in try LocalSocket.freeLoopbackPort() }
    }

    /// A port on 127.0.0.1 free for both UDP and TCP, for the agent's resolver.
    static func freeLoopbackDNSPort() throws(MachineError) -> Int {
        try onHost { () throws(SystemError) in try LocalSocket.freeLoopbackPortForUDPAndTCP() }
    }
}
