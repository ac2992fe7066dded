import FoundationEssentials
import HostOS
import Virt

/// What the host agent learns of the one boot it serves, and the pause and resume of its idle
/// sleep: whether its domain runs, is paused, stopped, or is gone (undefined, or defined anew:
/// another UUID than the one the agent was started for). Two ways:
/// - for a machine on this host (`throughHelper`), the boot is its QEMU process (`DomainQEMU`,
///   which follows a restore into the next one): its end is seen without libvirt, and libvirt
///   is asked through `LibvirtHelper` only when the agent needs more (a silent guest: paused or
///   not?) and to pause and resume;
/// - otherwise libvirt is asked in this process, over a connection of its own, made again
///   after a libvirtd restart.
/// While libvirt does not answer, nothing is known and nothing is decided.
public final class DomainWatch: @unchecked Sendable {
    public enum Sighting: Sendable, Equatable {
        case running, paused, stopped
        /// Not the domain this agent was started for any more.
        case gone(String)
        /// libvirt did not answer (restarting, say).
        case unknown(String)
    }

    let uri: String
    let paths: Paths
    let name: String
    private var hypervisor: Hypervisor?
    /// The domain's UUID when the watch first saw it (the agent starts once its boot runs).
    public private(set) var uuid: String?
    /// The boot's QEMU and the helper that asks libvirt, for a watch of a machine on this host.
    private let qemu: DomainQEMU?
    private let helper: LibvirtHelper?

    public init(uri: String, paths: Paths, name: String) {
        self.uri = uri
        self.paths = paths
        self.name = name
        qemu = nil
        helper = nil
        _ = look()
    }

    /// A watch of the boot that runs now, for a machine on this host: nil when no QEMU of its
    /// domain runs here. `executable`: the binary that answers as `LibvirtHelper`.
    public static func throughHelper(uri: String, paths: Paths, name: String, executable: String) -> DomainWatch? {
        let domain = MachineName.domainName(name, homeID: paths.homeID)
        guard let qemu = DomainQEMU(domain: domain, uri: uri) else { return nil }
        return DomainWatch(uri: uri, paths: paths, name: name, uuid: qemu.uuid, qemu: qemu,
                           helper: LibvirtHelper(executable: executable, uri: uri, name: name))
    }

    /// Whether libvirt is asked in another process (this one never loads it).
    public var asksThroughHelper: Bool { helper != nil }

    private func connected() throws(MachineError) -> Hypervisor {
        if let kept = hypervisor { return kept }
        let made = try Hypervisor(uri: uri, store: MachineStore(paths: paths))
        hypervisor = made
        return made
    }

    /// A watch of the same boot for another thread (a watch is used by one thread at a time).
    public func twin() -> DomainWatch {
        DomainWatch(uri: uri, paths: paths, name: name, uuid: uuid, qemu: qemu, helper: helper)
    }

    /// A watch of the boot with this UUID (the helper's, asked by an agent).
    init(uri: String, paths: Paths, name: String, uuid: String?, qemu: DomainQEMU? = nil, helper: LibvirtHelper? = nil) {
        self.uri = uri
        self.paths = paths
        self.name = name
        self.uuid = uuid
        self.qemu = qemu
        self.helper = helper
    }

    /// What the domain does now. Through the helper, a QEMU that still runs is `.running`
    /// unless `askLibvirt` (it may be paused: only libvirt knows); in this process libvirt is
    /// always asked.
    public func look(askLibvirt: Bool = true) -> Sighting {
        guard let qemu, let helper, let uuid else { return lookInProcess() }
        let pid: Int32
        switch qemu.now() {
        case .runs(let running): pid = running
        case .ended: return .stopped
        case .replaced(let other): return .gone("its domain was defined anew (UUID \(other), not \(uuid))")
        }
        guard askLibvirt else { return .running }
        do throws(MachineError) {
            let seen = Sighting(encoded: try helper.ask(.look, [uuid], timeout: LibvirtHelper.lookTimeout))
            // libvirt may say stopped a moment before QEMU's end is seen: QEMU's word is final.
            if seen == .stopped, case .runs = qemu.now() {
                return .unknown("libvirt says stopped while QEMU (pid \(pid)) runs")
            }
            return seen
        } catch {
            return .unknown(error.message)
        }
    }

    private func lookInProcess() -> Sighting {
        do throws(MachineError) {
            let hypervisor = try connected()
            guard let domain = try hypervisor.domain(name) else { return .gone("libvirt has no domain for \(name) any more") }
            let found = domain.uuid
            if uuid == nil { uuid = found }
            if let uuid, found != uuid { return .gone("its domain \(domain.name) was defined anew (UUID \(found), not \(uuid))") }
            switch try hypervisor.status(of: domain, name: name).state {
            case .running, .shuttingDown: return .running
            case .paused, .suspended: return .paused
            case .stopped, .crashed: return .stopped
            case .unknown: return .unknown("libvirt does not know the state of \(domain.name)")
            }
        } catch where error.kind == .foreignDomain {
            return .gone(error.message)
        } catch {
            // Made again at the next look: the daemon this connection reached may be gone.
            hypervisor = nil
            return .unknown(error.message)
        }
    }

    /// Pauses the domain's CPUs (the agent's idle sleep); only the one this watch follows.
    public func pause() throws(MachineError) {
        if let helper, let uuid { _ = try helper.ask(.pause, [uuid], timeout: LibvirtHelper.actTimeout); return }
        try onOwnDomain("pause") { domain throws(LibvirtError) in try domain.suspend() }
    }

    /// Lets it run again; a domain that runs already is left as it is.
    public func resume() throws(MachineError) {
        if let helper, let uuid { _ = try helper.ask(.resume, [uuid], timeout: LibvirtHelper.actTimeout); return }
        try onOwnDomain("resume") { domain throws(LibvirtError) in
            if try domain.status().state == .paused { try domain.resume() }
        }
    }

    private func onOwnDomain(_ verb: String, _ call: (Domain) throws(LibvirtError) -> Void) throws(MachineError) {
        let hypervisor: Hypervisor
        do {
            hypervisor = try connected()
        } catch {
            self.hypervisor = nil
            throw error
        }
        guard let domain = try hypervisor.domain(name), uuid == nil || domain.uuid == uuid else {
            throw MachineError("cannot \(verb) \(name): its domain is gone")
        }
        do {
            try call(domain)
        } catch {
            throw MachineError("cannot \(verb) \(name): \(error.message)")
        }
    }
}

/// The QEMU process that runs a domain on this host, followed from one process to the next:
/// libvirt restores a managed save (`virsh managedsave` then `start`; libvirt-guests does both
/// around a host's shutdown) in a new QEMU of the same UUID, and the boot goes on in it.
final class DomainQEMU: @unchecked Sendable {
    enum Now: Equatable {
        case runs(pid: Int32)
        /// None runs for the domain (it may be between a save and its restore).
        case ended
        /// One runs for a domain of the same name defined anew.
        case replaced(uuid: String)
    }

    let domain: String
    let uri: String
    let uuid: String
    private let lock = Lock()
    private var process: ProcessExit

    /// nil when no QEMU of `domain` runs here (or pidfds are missing).
    init?(domain: String, uri: String) {
        guard let running = QEMUProcess.running(domain: domain, uri: uri),
              let process = ProcessExit(pid: running.pid) else { return nil }
        self.domain = domain
        self.uri = uri
        uuid = running.uuid
        self.process = process
    }

    /// The followed process while it runs; after its end, the next one libvirt started for
    /// the domain, which is followed from then on if its UUID is the same.
    func now() -> Now {
        lock.lock()
        defer { lock.unlock() }
        if !process.hasEnded { return .runs(pid: process.pid) }
        guard let next = QEMUProcess.running(domain: domain, uri: uri) else { return .ended }
        guard next.uuid == uuid else { return .replaced(uuid: next.uuid) }
        guard let followed = ProcessExit(pid: next.pid) else { return .ended }
        process = followed
        return followed.hasEnded ? .ended : .runs(pid: followed.pid)
    }
}
