import HostAgent
import MachineCore
import Testing

@Suite struct ForwardingPlanTests {
    func manual(_ host: Int, _ guest: Int) -> PortForward {
        PortForward(kind: .manual, hostAddress: "127.0.0.1", hostPort: host, guestPort: guest)
    }

    func published(_ host: Int, by container: String, proto: String = "tcp") -> PortForward {
        PortForward(kind: .automatic, proto: proto, hostAddress: "127.0.0.1", hostPort: host, guestAddress: "127.0.0.1",
                    guestPort: host, container: container)
    }

    @Test func aManualForwardWinsAHostPortAContainerAlsoPublishes() {
        let plan = ForwardingPlan(manual: [manual(8080, 80)], automatic: [published(8080, by: "web")], sshPort: 2222)
        #expect(plan.open == [manual(8080, 80)])
        #expect(plan.refused.map(\.state) == ["error: host port 8080 is taken by a manual forward"])
    }

    @Test func twoContainersOnOneHostPortTheFirstKeepsIt() {
        let plan = ForwardingPlan(manual: [], automatic: [published(5432, by: "db1"), published(5432, by: "db2")], sshPort: 2222)
        #expect(plan.open.map(\.container) == ["db1"])
        #expect(plan.refused.map(\.state) == ["error: host port 5432 is taken by container db1"])
    }

    @Test func theMachinesOwnSSHPortIsNotForwardedButTheSameUDPPortIs() {
        let plan = ForwardingPlan(manual: [manual(2222, 22)], automatic: [published(2222, by: "dns", proto: "udp")], sshPort: 2222)
        #expect(plan.open.map(\.hostKey) == ["udp/127.0.0.1:2222"])
        #expect(plan.refused.map(\.state) == ["not forwarded: 2222 is the machine's own SSH port"])
    }

    @Test func udpIsRefusedWithTheReasonWhereQEMUCannotForwardIt() {
        let plan = ForwardingPlan(manual: [], automatic: [published(53, by: "dns", proto: "udp"), published(80, by: "web")], sshPort: 2222,
                                  udpRefusal: "UDP is forwarded by QEMU, which runs on the remote libvirt host")
        #expect(plan.open.map(\.container) == ["web"])
        #expect(plan.refused.map(\.state) == ["not forwarded: UDP is forwarded by QEMU, which runs on the remote libvirt host"])
    }

    @Test func tcpAndUDPOnOneHostPortAreTwoForwards() {
        let plan = ForwardingPlan(manual: [], automatic: [published(5353, by: "dns", proto: "udp"), published(5353, by: "dns")], sshPort: 2222)
        #expect(plan.refused.isEmpty)
        #expect(Set(plan.wanted.keys) == ["udp/127.0.0.1:5353", "tcp/127.0.0.1:5353"])
    }

    @Test func theSamePortOnTwoAddressesIsTwoForwards() {
        var other = published(9000, by: "api")
        other.hostAddress = "0.0.0.0"
        let plan = ForwardingPlan(manual: [], automatic: [published(9000, by: "web"), other], sshPort: 2222)
        #expect(plan.open.count == 2 && plan.refused.isEmpty)
        #expect(Set(plan.wanted.keys) == ["tcp/127.0.0.1:9000", "tcp/0.0.0.0:9000"])
    }
}
