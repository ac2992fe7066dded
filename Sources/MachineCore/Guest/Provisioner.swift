import FoundationEssentials
import HostOS
import SSH
#if canImport(Glibc)
import Glibc  // open(2) and fstat(2): SFTP.upload streams the engine archive from a descriptor
#endif

/// Installs the engine bundle on a guest's data disk (only when the installed version
/// differs) and applies the machine's engine settings, over one SSH session. The guest side
/// is `provisioning/guest/install.sh` and the bundle's `service`.
public struct Provisioner {
    public let session: Session
    public let guest: GuestSSH
    public let progress: (String) -> Void

    /// Where uploads land on the guest: on the data disk, so a large bundle never fills RAM.
    static let uploadFolder = "/var/lib/machine/upload"
    static let engineHome = GuestContract.engineHome

    public init(session: Session, guest: GuestSSH, progress: @escaping (String) -> Void) {
        self.session = session
        self.guest = guest
        self.progress = progress
    }

    public struct Outcome: Sendable {
        public let installedVersion: String
        public let installed: Bool
        public let settingsChanged: Bool
    }

    /// The engine settings and daemon.json come from `config`. `tls`: the engine's TLS files (name in the engine home, file here), when it has the endpoint.
    public func provision(bundle: EngineBundle, config: MachineConfig, tls: [(String, URL)] = []) throws(MachineError) -> Outcome {
        let version = bundle.manifest.version
        let current = try run("cat \(Self.engineHome)/current/VERSION 2>/dev/null || true", what: "reading the installed engine version")
            .trimmed()
        var installed = false
        if current != version {
            progress(current.isEmpty ? "installing the engine \(version)" : "updating the engine from \(current) to \(version)")
            try install(bundle)
            installed = true
        }
        let sftp = try sftpSession()
        try upload(data: config.daemonJSON, to: "\(Self.engineHome)/daemon.json.new", sftp: sftp)
        try upload(data: config.engine.environmentFile(), to: "\(Self.engineHome)/engine.env.new", sftp: sftp)
        for (name, file) in tls {
            try upload(file: file, to: "\(Self.engineHome)/\(name).new", sftp: sftp, announce: false)
        }
        let answer = try run("\(Self.engineHome)/current/service reconfigure && \(Self.engineHome)/current/service start",
                             what: "applying the engine settings")
        return Outcome(installedVersion: version, installed: installed, settingsChanged: answer.contains(GuestContract.settingsChanged) && !answer.contains(GuestContract.settingsUnchanged))
    }

    private func install(_ bundle: EngineBundle) throws(MachineError) {
        guard let sha = bundle.manifest.artefacts["engine.tar.xz"]?.sha256 else {
            throw MachineError("the engine bundle's manifest names no engine.tar.xz", hint: "rebuild it: remove \(bundle.folder.path)")
        }
        // The Debian package ships the engine as its disk only (scripts/package.sh): a guest
        // mounts that at boot, and only a running guest's update needs the archive.
        guard FileManager.default.fileExists(atPath: bundle.archive.path) else {
            throw MachineError("the engine \(bundle.manifest.version) in \(bundle.folder.path) comes as a disk the machine mounts at boot, with no archive to install it in a running machine",
                               hint: "`machine restart` boots the machine with it; or `machine image build` builds the archive into your own cache, and `machine up` installs it")
        }
        _ = try run("mkdir -p \(Self.uploadFolder)", what: "preparing the upload folder")
        let sftp = try sftpSession()
        let archive = "\(Self.uploadFolder)/engine.tar.xz"
        try upload(file: bundle.archive, to: archive, sftp: sftp, announce: true)
        try upload(file: bundle.installScript, to: "\(Self.uploadFolder)/install.sh", sftp: sftp, announce: false)
        let output = try run("sh \(Self.uploadFolder)/install.sh \(archive) \(sha); status=$?; rm -f \(archive); exit $status",
                             what: "installing the engine")
        if let last = output.split(separator: "\n").last { progress(String(last)) }
    }

    private func sftpSession() throws(MachineError) -> SFTP {
        do {
            return try SFTP(session: session)
        } catch {
            throw GuestSSH.explain(error, name: guest.name, files: guest.files)
        }
    }

    /// Uploads to a temporary name and renames, so an interrupted upload never looks complete.
    private func upload(file: URL, to path: String, sftp: SFTP, announce: Bool) throws(MachineError) {
        let fd = open(file.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MachineError("cannot read \(file.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        fstat(fd, &info)
        let total = UInt64(info.st_size)
        var nextReport: UInt64 = 0
        let started = Date()
        do {
            try sftp.upload(from: fd, to: path + ".part", permissions: 0o644) { sent in
                guard announce, sent >= nextReport else { return }
                let percent = total == 0 ? 100 : Int(sent * 100 / total)
                progress(String(cFormat: "uploading the engine: %ld%% of %.1f MB", percent, Double(total) / 1e6))
                nextReport += max(total / 4, 1)
            }
            try sftp.rename(path + ".part", to: path)
        } catch {
            throw MachineError("uploading \(file.lastPathComponent) to \(guest.name) failed: \(error)",
                               hint: "check the guest's free space with `machine ssh \(guest.name) -- df -h /var/lib/machine`")
        }
        if announce {
            progress(String(cFormat: "uploaded %.1f MB in %.1f s", Double(total) / 1e6, Date().timeIntervalSince(started)))
        }
    }

    /// Small files go through a private temporary file: SFTP.upload reads a descriptor.
    private func upload(data: Data, to path: String, sftp: SFTP) throws(MachineError) {
        let temp = FileManager.default.temporaryDirectory.appendingPathComponent("machine-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        try AtomicFile.save(data, to: temp, mode: 0o600)
        defer { try? FileManager.default.removeItem(at: temp) }
        try upload(file: temp, to: path, sftp: sftp, announce: false)
    }

    /// Runs a command on the guest; its output, or an error with what it printed.
    @discardableResult
    public func run(_ command: String, what: String) throws(MachineError) -> String {
        let result: (status: Int32, output: Data, errors: Data)
        do {
            result = try session.run(command)
        } catch {
            throw GuestSSH.explain(error, name: guest.name, files: guest.files)
        }
        guard result.status == 0 else {
            let errors = String(decoding: result.errors, as: UTF8.self).trimmed()
            throw MachineError("\(what) on \(guest.name) failed (exit \(result.status))\(errors.isEmpty ? "" : ": \(errors)")",
                               hint: "see `machine ssh \(guest.name) -- cat /var/log/docker.log` and `machine logs \(guest.name)`")
        }
        return String(decoding: result.output, as: UTF8.self)
    }
}
