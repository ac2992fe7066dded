import FoundationEssentials
import HostOS
import Virt

/// Everything `status`, `ls` and `inspect` show about one machine: read from its config and
/// from libvirt, with libvirt's reason and QEMU's last words when a state is one nobody asked for.
public struct MachineInfo: Codable, Sendable {
    public struct SSH: Codable, Sendable {
        public let host: String
        public let port: Int
        public let user: String
        public let identityFile: String
        public let knownHostsFile: String
        /// For a machine on a remote libvirt host: the OpenSSH ProxyCommand that reaches
        /// its port there (`ssh -W`), since `host` and `port` are that host's loopback.
        public let proxyCommand: String?
    }
    public struct SharedFolderInfo: Codable, Sendable {
        public let hostPath: String
        public let guestPath: String
        public let readOnly: Bool
        /// virtiofs or 9p: what the running guest got, or what its next boot would get.
        public let type: String
        /// Whether host edits inside it raise inotify events for watchers in the guest.
        public let inotify: Bool
        /// The virtiofsd that machine started for it (session machines), while it runs.
        public let virtiofsdPid: Int32?
    }
    /// The builds a machine's last boot was made of.
    public struct BuildsInfo: Codable, Sendable {
        public struct Image: Codable, Sendable {
            public let folder: String
            public let kernel: String
        }
        public struct Engine: Codable, Sendable {
            public let folder: String
            /// The installed version: Debian's docker.io version and the bundle's key.
            public let version: String
            public let docker: String
        }
        /// The Debian release of the guest and its engine (`DebianSuite`).
        public let suite: String
        public let image: Image?
        public let engine: Engine
        /// Kept on these builds after a failed upgrade (`machine upgrade` tries again).
        public let held: Bool
    }
    public struct TLSInfo: Codable, Sendable {
        public let host: String
        /// DOCKER_CERT_PATH: ca.pem, cert.pem and key.pem.
        public let certPath: String
    }
    public let name: String
    /// Where it runs: "local", or the remote libvirt host as user@host:port.
    public let host: String
    public let state: String
    /// libvirt's reason for the state ("unknown" for a QEMU that stopped its own CPUs).
    public let stateReason: String
    /// QEMU's last error line, when the machine is not running and QEMU left one.
    public let qemuError: String?
    /// libvirt's log of the machine's QEMU.
    public let qemuLog: String?
    public let domain: String
    public let config: MachineConfig
    public let folder: String
    public let consoleLog: String
    public let dataDisk: String
    /// What the data disk's file holds on the host it lives on (this one, or the remote libvirt
    /// host, as libvirt reports it): its qcow2 grows as the guest writes, and gives back what
    /// the guest frees and trims.
    public let dataDiskOnHost: FileSpace?
    /// The resident memory of the machine's QEMU while it runs on this host: the guest RAM it
    /// touched and has not been given back (free page reporting), and QEMU's own.
    public let qemuResidentBytes: Int64?
    /// How long it waits without a client before it sleeps ("5m", "off"), and since when it
    /// sleeps (nil while awake).
    public let idleSleep: String
    public let asleepSince: Date?
    public let ssh: SSH
    public let shares: [SharedFolderInfo]
    /// Nil before the first boot, or when the cache no longer has its builds.
    public let builds: BuildsInfo?
    public let tls: TLSInfo?
    public let network: NetworkInfo
    /// How full the data disk is, as the agent last measured it (while it runs).
    public let dataDiskUsage: DataDiskUsage?
    /// The platforms it runs natively and through emulation, checked in the guest: only
    /// `inspect` asks (a round trip to the guest that `ls` and `status` do without).
    public var platforms: PlatformsInfo? = nil

    /// What `status`, `ls` and `up` warn about: a data disk 90% full or more.
    public var warnings: [String] {
        [dataDiskUsage?.warning(machine: name)].compactMap { $0 }
    }

    /// What containers see of the host (issue 32): whether they may reach it, by which names
    /// and address, and who answers the guest's DNS.
    public struct NetworkInfo: Codable, Sendable {
        public let hostAccess: Bool
        public let hostNames: [String]
        public let hostAddress: String
        /// "host agent on 127.0.0.1:PORT" or "QEMU's relay" (a remote machine, an older image).
        public let dns: String
        /// Who forwards published UDP ports: "QEMU", or why none does.
        public let udp: String
    }

    /// The state a user reads: libvirt's, but a machine saved by `machine suspend` is stopped
    /// to libvirt and suspended to its user, and one its agent paused when idle is sleeping.
    static func state(_ status: Domain.Status, asleep: Bool) -> String {
        if status.state == .stopped && status.reason == "saved" { return "suspended" }
        if status.state == .paused && status.reason == "user" && asleep { return "sleeping" }
        return status.state.rawValue
    }

    /// Whether a state is one a user should read the reason of: anything but running, and a
    /// stop nobody asked for.
    public static func isNotable(_ status: Domain.Status) -> Bool {
        switch status.state {
        case .running: return false
        case .stopped: return ["crashed", "failed to start", "killed by libvirtd"].contains(status.reason)
        default: return true
        }
    }
}

/// Reading a machine's info from its files and libvirt.
extension LibvirtRuntime {
    func info(_ name: String) throws(MachineError) -> MachineInfo {
        let config = try store.config(name)
        let files = store.files(name)
        // One lookup (name, owner check, adoption) serves the state, the name and the log.
        let domain = try hypervisor.domain(name)
        let status = try hypervisor.status(of: domain, name: name)
        let domainName = domain?.name ?? hypervisor.domainName(name)
        let qemuLog = hypervisor.qemuLog(domainNamed: domainName)
        let ownVirtiofsd = UserVirtiofsd.running(pidsFile: files.virtiofsdPids)
        let lastBoot = BootRecord.last(files)
        // What the running guest got (`auto` chooses at each boot); the next boot's otherwise.
        let booted = status.state == .stopped ? nil : lastBoot?.transports
        return MachineInfo(
            // A machine saved by `machine suspend` is stopped to libvirt, suspended to its user.
            name: name, host: remote?.destination ?? "local", state: MachineInfo.state(status, asleep: IdleSleep.markedSince(files) != nil),
            stateReason: status.reason,
            qemuError: status.state == .running || !MachineInfo.isNotable(status) ? nil : QEMULog.lastError(at: qemuLog),
            qemuLog: qemuLog?.path, domain: domainName, config: config,
            folder: files.folder.path, consoleLog: files.consoleLog.path, dataDisk: remoteVolumes(name).map { "\(RemoteVolumes.poolPath)/\($0.dataDiskName)" } ?? files.dataDisk.path,
            dataDiskOnHost: remoteVolumes(name).map { $0.dataDiskSpace() } ?? FileSpace.of(files.dataDisk.path),
            qemuResidentBytes: status.state == .stopped ? nil : QEMUProcess.residentBytes(domain: domainName, uri: hypervisor.connection.uri),
            idleSleep: IdleSleep.describe(config.idleSleepSeconds), asleepSince: status.state == .paused ? IdleSleep.markedSince(files) : nil,
            ssh: .init(host: "127.0.0.1", port: config.sshPort, user: "root", identityFile: files.privateKey.path,
                       knownHostsFile: files.knownHosts.path,
                       proxyCommand: remote.map { $0.jump(toLoopbackPort: config.sshPort).map(ShellEnvironment.posixQuote).joined(separator: " ") }),
            shares: ((try? Shares.devices(config.mounts, type: config.mountType, systemDaemon: hypervisor.isSystemDaemon,
                                          machineFolder: files.folder)) ?? []).map {
                .init(hostPath: $0.share.hostPath, guestPath: $0.share.guestPath, readOnly: $0.share.readOnly, type: booted?[$0.share.guestPath] ?? $0.typeName,
                      inotify: $0.share.raisesEvents, virtiofsdPid: ownVirtiofsd[$0.tag])
            },
            builds: lastBoot?.builds.map {
                .init(suite: $0.engine.suite, image: $0.image.map { .init(folder: $0.folder.path, kernel: $0.manifest.kernel) },
                      engine: .init(folder: $0.engine.folder.path, version: $0.engine.manifest.version, docker: $0.engine.manifest.docker),
                      held: config.held != nil)
            },
            tls: config.tlsPort.map { .init(host: "tcp://127.0.0.1:\($0)", certPath: files.tls.path) },
            network: .init(hostAccess: config.hostAccess, hostNames: config.hostAccess ? GuestContract.hostNames : [],
                           hostAddress: GuestContract.hostAddress,
                           dns: (try? String(contentsOf: files.hostResolverPort, encoding: .utf8))
                               .map { "host agent on 127.0.0.1:\($0.trimmed())" + (config.hostAccess ? "" : " (the guest's own; containers use QEMU's relay)") }
                               ?? "QEMU's relay",
                           udp: remote == nil ? "QEMU" : "not forwarded: QEMU runs on \(remote?.host ?? "the libvirt host")"),
            dataDiskUsage: status.state == .running ? DataDiskUsage.recent(at: files.dataDiskUsage) : nil)
    }
}

extension MachineInfo {
    /// The state as `status` and `ls` show it: with libvirt's reason when nobody asked for it.
    public var stateLine: String {
        // By `machine suspend`, or by the agent of an idle machine.
        if (state == "suspended" && stateReason == "saved") || state == "sleeping" { return state }
        guard let state = Domain.State(rawValue: state) else { return state }
        return MachineInfo.isNotable(Domain.Status(state: state, reason: stateReason)) ? "\(self.state) (\(stateReason))" : self.state
    }
}
