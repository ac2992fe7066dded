import FoundationEssentials
import Virt

/// What the host agent learns from libvirt about the one boot it serves, and the pause and
/// resume of its idle sleep: whether its domain runs, is paused, stopped, or is gone (undefined, or defined anew: another UUID than the
/// one the agent was started for). Asked over a connection of its own, made again after a
/// libvirtd restart; while libvirt does not answer, nothing is known and nothing is decided.
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

    public init(uri: String, paths: Paths, name: String) {
        self.uri = uri
        self.paths = paths
        self.name = name
        _ = look()
    }

    private func connected() throws(MachineError) -> Hypervisor {
        if let kept = hypervisor { return kept }
        let made = try Hypervisor(uri: uri, store: MachineStore(paths: paths))
        hypervisor = made
        return made
    }

    /// A watch of the same boot for another thread (a watch is used by one thread at a time).
    public func twin() -> DomainWatch {
        let twin = DomainWatch(uri: uri, paths: paths, name: name, uuid: uuid)
        return twin
    }

    private init(uri: String, paths: Paths, name: String, uuid: String?) {
        self.uri = uri
        self.paths = paths
        self.name = name
        self.uuid = uuid
    }

    public func look() -> Sighting {
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
        try onOwnDomain("pause") { domain throws(LibvirtError) in try domain.suspend() }
    }

    /// Lets it run again; a domain that runs already is left as it is.
    public func resume() throws(MachineError) {
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
