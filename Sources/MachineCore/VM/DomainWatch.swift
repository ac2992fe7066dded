import Foundation
import Virt

/// What the host agent learns from libvirt about the one boot it serves: whether its domain
/// runs, is paused, stopped, or is gone (undefined, or defined anew: another UUID than the
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

    public func look() -> Sighting {
        do throws(MachineError) {
            let hypervisor: Hypervisor
            if let kept = self.hypervisor {
                hypervisor = kept
            } else {
                hypervisor = try Hypervisor(uri: uri, store: MachineStore(paths: paths))
                self.hypervisor = hypervisor
            }
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
}

extension Machines {
    /// A watch on the domain `name` runs in now, on the daemon it lives on.
    public func domainWatch(_ name: String) -> DomainWatch {
        DomainWatch(uri: uri, paths: paths, name: name)
    }
}
