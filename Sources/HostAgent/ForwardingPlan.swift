import MachineCore

/// Which forwards the agent opens, and why the others are not: decided from the manual
/// forwards (`machine port add`) and the ports running containers publish, before any socket
/// is touched, so it can be tested alone.
public struct ForwardingPlan: Sendable, Equatable {
    /// The forwards to have open, in order.
    public let open: [PortForward]
    /// The forwards left closed, each with its reason.
    public let refused: [ForwardStatus]

    /// The forwards to have open, by host address and port.
    public var wanted: [String: PortForward] {
        Dictionary(open.map { ($0.hostKey, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// `udpRefusal`: why UDP cannot be forwarded (a machine on a remote libvirt host); nil
    /// when QEMU forwards it.
    public init(manual: [PortForward], automatic: [PortForward], sshPort: Int, udpRefusal: String? = nil) {
        var taken: [String: PortForward] = [:]
        var open: [PortForward] = []
        var refused: [ForwardStatus] = []
        // Manual forwards first: they win a host port both ask for.
        for forward in manual + automatic {
            if forward.proto == "udp", let udpRefusal {
                refused.append(ForwardStatus(forward: forward, state: "not forwarded: \(udpRefusal)"))
            } else if !["tcp", "udp"].contains(forward.proto) {
                refused.append(ForwardStatus(forward: forward, state: "not forwarded: only TCP and UDP are"))
            } else if forward.hostPort == sshPort && forward.proto == "tcp" {
                refused.append(ForwardStatus(forward: forward, state: "not forwarded: \(sshPort) is the machine's own SSH port"))
            } else if let other = taken[forward.hostKey] {
                let owner = other.container.map { "container \($0)" } ?? "a manual forward"
                refused.append(ForwardStatus(forward: forward, state: "error: host port \(forward.hostPort) is taken by \(owner)"))
            } else {
                taken[forward.hostKey] = forward
                open.append(forward)
            }
        }
        self.open = open
        self.refused = refused
    }
}
