import FoundationEssentials
import HostOS

/// UDP forwards made by QEMU's own user-mode network while the machine runs (`hostfwd_add`
/// through libvirt's monitor passthrough): SSH carries no datagrams, and QEMU's own forward
/// is the floor of this network (bench/udp_forward.py measures it against itself). QEMU keeps
/// a socket per forward on the host, tells clients apart by their source port and expires
/// idle mappings itself. Only for a machine on this host: QEMU would bind the ports on a
/// remote libvirt host.
public final class QEMUForwards: @unchecked Sendable {
    let uri: String
    let paths: Paths
    let name: String
    /// Asks through it rather than in this process (the agent of a machine on this host).
    let helper: LibvirtHelper?

    /// A fresh libvirt connection per call: forwards change only when containers start or
    /// stop, and a connection kept open would have to outlive libvirtd restarts.
    init(uri: String, paths: Paths, name: String, helper: LibvirtHelper? = nil) {
        self.uri = uri
        self.paths = paths
        self.name = name
        self.helper = helper
    }

    /// The guest address a UDP forward goes to: a port published on the guest's loopback
    /// arrives at the loopback alias, which the guest turns to 127.0.0.1 (57-host-network.sh);
    /// any other at the guest's own address, where the engine's DNAT takes it to the container.
    public static func guestTarget(_ guestAddress: String) -> String {
        guestAddress == "127.0.0.1" ? GuestContract.loopbackAliasAddress : guestAddress
    }

    /// "udp:127.0.0.1:5353-10.0.2.15:5353": QEMU's words for one forward.
    static func rule(hostAddress: String, hostPort: Int, guestAddress: String, guestPort: Int) -> String {
        "udp:\(hostAddress):\(hostPort)-\(guestTarget(guestAddress)):\(guestPort)"
    }

    /// Opens the forward. One left by an earlier agent of this boot is replaced, so an agent
    /// that restarts takes its forwards back rather than failing on them.
    public func add(hostAddress: String, hostPort: Int, guestAddress: String, guestPort: Int) throws(MachineError) {
        let rule = Self.rule(hostAddress: hostAddress, hostPort: hostPort, guestAddress: guestAddress, guestPort: guestPort)
        // The removal's answer (nothing to remove, mostly) does not matter.
        let answer = try monitor(["hostfwd_remove \(DomainDefinition.networkID) udp:\(hostAddress):\(hostPort)",
                                  "hostfwd_add \(DomainDefinition.networkID) \(rule)"]).last ?? ""
        // HMP says nothing when it worked; a failure is a line of text (the port is taken).
        if !answer.trimmed().isEmpty {
            let taken = answer.lowercased().contains("could not set up host forwarding rule")
            let holder = taken ? LocalSocket.holder(ofUDPPort: hostPort).map { " by \($0)" } ?? " on the host" : ""
            throw MachineError(taken ? "\(hostAddress):\(hostPort)/udp is already in use\(holder)" : "QEMU refused the forward \(rule): \(answer.trimmed())")
        }
    }

    public func remove(hostAddress: String, hostPort: Int) throws(MachineError) {
        _ = try monitor(["hostfwd_remove \(DomainDefinition.networkID) udp:\(hostAddress):\(hostPort)"])
    }

    /// Runs the commands in turn on one connection; what each printed.
    func monitor(_ commands: [String]) throws(MachineError) -> [String] {
        if let helper {
            let printed = try helper.ask(.monitor, commands, timeout: LibvirtHelper.actTimeout)
            guard let answers = try? JSONDecoder().decode([String].self, from: Data(printed.utf8)) else {
                throw MachineError("cannot read QEMU's answers for \(name) from the libvirt helper: \(printed.trimmed())")
            }
            return answers
        }
        let hypervisor = try Hypervisor(uri: uri, store: MachineStore(paths: paths))
        guard let domain = try hypervisor.domain(name) else {
            throw MachineError("\(name) has no libvirt domain")
        }
        var answers: [String] = []
        for command in commands {
            do {
                answers.append(try domain.humanMonitorCommand(command))
            } catch {
                throw MachineError("cannot ask QEMU of \(name) for a UDP forward: \(error.message)")
            }
        }
        return answers
    }
}
