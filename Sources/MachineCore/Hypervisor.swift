import Foundation
import SSH
import Virt
#if canImport(Glibc)
import Glibc
#endif

/// Runs machines as libvirt domains: defines them from the machine's config and the cached
/// image, starts and stops them, and reads their state from libvirt (never from our files).
public final class Hypervisor {
    public let connection: Connection
    public let store: MachineStore

    /// `--connect` wins, then MACHINE_LIBVIRT_URI, then qemu:///system for root and
    /// qemu:///session for everyone else (libvirt spawns a per-user daemon for it).
    public static func defaultURI(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let flag, !flag.isEmpty { return flag }
        if let env = environment["MACHINE_LIBVIRT_URI"], !env.isEmpty { return env }
        return getuid() == 0 ? "qemu:///system" : "qemu:///session"
    }

    public init(uri: String, store: MachineStore) throws(MachineError) {
        do {
            connection = try Connection(uri: uri)
        } catch {
            throw MachineError(
                "cannot reach libvirt at \(uri): \(error.message)",
                hint: uri.hasSuffix("/system")
                    ? "start the daemons with scripts/host-setup.sh (without systemd it also keeps a /dev/kvm that cannot run guests away from libvirtd, which would otherwise re-probe QEMU for a minute at every start), or `systemctl start libvirtd`"
                    : "check that libvirt is installed (scripts/host-setup.sh), or pick another daemon with --connect")
        }
        self.store = store
    }

    public func domain(_ name: String) throws(MachineError) -> Domain? {
        do {
            return try connection.domain(named: MachineName.domainName(name))
        } catch {
            throw MachineError("cannot ask libvirt about \(name): \(error.message)")
        }
    }

    /// The state libvirt reports, `.stopped` when libvirt has no domain for it.
    public func state(_ name: String) throws(MachineError) -> Domain.State {
        guard let domain = try domain(name) else { return .stopped }
        do {
            return try domain.state()
        } catch {
            throw MachineError("cannot read the state of \(name): \(error.message)")
        }
    }

    /// Whether this connection is libvirt's system daemon (which can run virtiofsd).
    public var isSystemDaemon: Bool { connection.uri.hasSuffix("/system") }

    public func definition(config: MachineConfig, files: MachineFiles, image: GuestImage?, accelerator: Accelerator,
                           shares: [SharedFolder] = [], agentInputPort: Int? = nil) -> DomainDefinition {
        let boot: DomainDefinition.Boot
        if let iso = config.iso {
            boot = .iso(iso)
        } else if let image {
            boot = .kernel(kernel: image.kernel.path, initrd: image.initramfs.path, commandLine: image.kernelCommandLine)
        } else {
            boot = .iso("")
        }
        // The system daemon would run QEMU as its own user, who cannot open files in the
        // user's home: run it as the user instead (and leave the files' owners alone).
        let owner = isSystemDaemon ? (uid: getuid(), gid: getgid()) : nil
        return DomainDefinition(
            name: MachineName.domainName(config.name), memoryMiB: config.memoryMiB, cpus: config.cpus,
            accelerator: accelerator, boot: boot, dataDisk: files.dataDisk.path, seed: files.seed.path,
            consoleLog: files.consoleLog.path, sshPort: config.sshPort, processOwner: owner, shares: shares,
            agentLink: agentInputPort.map { .init(socket: files.guestSSHSocket.path, inputPort: $0) })
    }

    /// Defines (again) and boots the machine; returns once libvirt has started QEMU.
    public func start(_ definition: DomainDefinition, name: String) throws(MachineError) {
        do {
            // Defined again at every start, so a new image or changed settings take effect; a
            // stopped definition is removed first (redefining by name would need its UUID).
            if let old = try connection.domain(named: definition.name) {
                if try old.state() == .running { return }
                try old.undefine()
            }
            let domain = try connection.define(xml: definition.xml())
            try domain.start()
        } catch {
            throw MachineError("libvirt could not start \(name): \(error.message)",
                               hint: "see `machine logs \(name)` and libvirt's log for QEMU's own words")
        }
    }

    /// Clean shutdown through ACPI, waiting up to `timeout` seconds, then pulls the plug.
    /// Returns true if the guest stopped by itself.
    @discardableResult
    public func stop(_ name: String, force: Bool, timeout: Double = 60) throws(MachineError) -> Bool {
        guard let domain = try domain(name) else { return true }
        do {
            guard try domain.state() != .stopped else { return true }
            if !force {
                try domain.shutdown()
                let deadline = Date().addingTimeInterval(timeout)
                while Date() < deadline {
                    if try domain.state() == .stopped { return true }
                    usleep(200_000)
                }
            }
            if try domain.state() != .stopped { try domain.destroy() }
            return false
        } catch {
            throw MachineError("cannot stop \(name): \(error.message)")
        }
    }

    /// Removes the domain definition (stopping it first if `force`).
    public func undefine(_ name: String) throws(MachineError) {
        guard let domain = try domain(name) else { return }
        do {
            if try domain.state() != .stopped { try domain.destroy() }
            try domain.undefine()
        } catch {
            throw MachineError("cannot remove the libvirt domain of \(name): \(error.message)")
        }
    }
}

/// Waits for the guest's boot on its console and pins its SSH host key.
public enum BootWatcher {
    /// Waits until the console of the current boot says sshd is ready; returns the uptime.
    public static func waitForSSH(files: MachineFiles, name: String, timeout: Double = 120,
                                  isRunning: () -> Bool) throws(MachineError) -> Double {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = (try? String(contentsOf: files.consoleLog, encoding: .utf8)) ?? ""
            if let uptime = ConsoleLog.uptime(ofStep: "sshd ready", in: text) { return uptime }
            if !isRunning() {
                throw MachineError("\(name) stopped while booting", hint: "see `machine logs \(name)`")
            }
            usleep(100_000)
        }
        throw MachineError("\(name) did not finish booting within \(Int(timeout)) s", hint: "see `machine logs \(name)`")
    }

    /// Pins the host key the console shows on first boot; on later boots, refuses a
    /// different one.
    public static func pinHostKey(files: MachineFiles, config: MachineConfig) throws(MachineError) -> HostKey {
        let text = (try? String(contentsOf: files.consoleLog, encoding: .utf8)) ?? ""
        guard let key = ConsoleLog.hostKey(in: text) else {
            throw MachineError("the guest printed no SSH host key on its console", hint: "see `machine logs \(config.name)`")
        }
        let line = "[127.0.0.1]:\(config.sshPort) \(key.line)\n"
        if let pinned = try? String(contentsOf: files.knownHosts, encoding: .utf8),
           let pinnedKey = pinned.split(separator: " ", maxSplits: 1).last.flatMap({ HostKey(line: String($0)) }) {
            guard pinnedKey == key else {
                throw MachineError(
                    "the machine \(config.name) now has a different SSH host key than the one pinned at its first boot",
                    hint: "if its data disk was replaced on purpose, remove \(files.knownHosts.path) and start it again; otherwise something else may be answering for it")
            }
            if pinned != line { try AtomicFile.write(Data(line.utf8), to: files.knownHosts, mode: 0o600) }
            return key
        }
        try AtomicFile.write(Data(line.utf8), to: files.knownHosts, mode: 0o600)
        return key
    }
}
