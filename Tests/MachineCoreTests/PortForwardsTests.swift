import Foundation
import MachineCore
import Testing

struct PortForwardsTests {
    let containers = Data(#"""
    [
      {"Id": "aaaaaaaaaaaaaaaa", "Names": ["/web"], "Ports": [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"PrivatePort": 443, "Type": "tcp"}]},
      {"Id": "bbbbbbbbbbbbbbbb", "Names": ["/local"], "Ports": [
        {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8081, "Type": "tcp"}]},
      {"Id": "cccccccccccccccc", "Names": ["/dns"], "Ports": [
        {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
        {"IP": "0.0.0.0", "PrivatePort": 22, "PublicPort": 2222, "Type": "tcp"}]},
      {"Id": "dddddddddddddddd", "Names": ["/statsd"], "Ports": [
        {"IP": "127.0.0.1", "PrivatePort": 8125, "PublicPort": 8125, "Type": "udp"}]}
    ]
    """#.utf8)

    @Test func publishedPortsAreForwardedFromThePublishAddressOnly() {
        let forwards = PortForwards.automatic(containersJSON: containers, publishAddress: "127.0.0.1", sshPort: 2222)
        #expect(forwards.map(\.hostPort) == [5353, 8080, 8081, 8125])
        let web = forwards.first { $0.hostPort == 8080 }
        #expect(web?.hostAddress == "127.0.0.1" && web?.guestAddress == "127.0.0.1" && web?.guestPort == 8080 && web?.container == "web")
        // Asked for 127.0.0.1 in the guest: still only 127.0.0.1 on the host.
        #expect(forwards.first { $0.hostPort == 8081 }?.hostAddress == "127.0.0.1")
        #expect(forwards.first { $0.hostPort == 5353 }?.proto == "udp")
    }

    @Test func udpGoesToTheGuestsAddressOrItsLoopbackAliasAsPublished() {
        let forwards = PortForwards.automatic(containersJSON: containers, publishAddress: "127.0.0.1", sshPort: 2222)
        // Published on every address: QEMU delivers to the guest's own address, where the
        // engine's DNAT rule takes it; on the guest's loopback only: to the alias the guest
        // turns to 127.0.0.1.
        #expect(forwards.first { $0.hostPort == 5353 }?.guestAddress == GuestContract.guestAddress)
        let statsd = forwards.first { $0.hostPort == 8125 }
        #expect(statsd?.guestAddress == "127.0.0.1" && statsd?.proto == "udp")
        #expect(QEMUForwards.guestTarget(statsd?.guestAddress ?? "") == GuestContract.loopbackAliasAddress)
        #expect(QEMUForwards.guestTarget(GuestContract.guestAddress) == GuestContract.guestAddress)
    }

    /// The list is the guest's: a port no listener can have, a protocol other than TCP and
    /// UDP, an address that is not one, or a name that would forge lines in the agent's log
    /// are never passed on (a port over 65535 trapped the agent).
    @Test func whatAHostileEngineListsCannotReachTheListeners() {
        let hostile = Data(#"""
        [{"Id": "eeeeeeeeeeeeeeee", "Names": ["/evil\nforwarded 22"], "Ports": [
            {"IP": "0.0.0.0", "PrivatePort": 1, "PublicPort": 70000, "Type": "tcp"},
            {"IP": "0.0.0.0", "PrivatePort": 1, "PublicPort": -1, "Type": "tcp"},
            {"IP": "0.0.0.0", "PrivatePort": 1, "PublicPort": 9000, "Type": "sctp"},
            {"IP": "10.0.2.15 -net", "PrivatePort": 1, "PublicPort": 9001, "Type": "udp"},
            {"IP": "0.0.0.0", "PrivatePort": 1, "PublicPort": 9002, "Type": "tcp"}]}]
        """#.utf8)
        let forwards = PortForwards.automatic(containersJSON: hostile, publishAddress: "127.0.0.1", sshPort: 2222)
        #expect(forwards.map(\.hostPort) == [9002])
        #expect(forwards.first?.container == "evilforwarded 22")
    }

    @Test func theMachinesSSHPortIsNeverAForward() {
        let forwards = PortForwards.automatic(containersJSON: containers, publishAddress: "127.0.0.1", sshPort: 2222)
        #expect(!forwards.contains { $0.hostPort == 2222 })
    }

    @Test func anotherPublishAddressIsUsedAsGiven() {
        let forwards = PortForwards.automatic(containersJSON: containers, publishAddress: "0.0.0.0", sshPort: 22)
        #expect(forwards.allSatisfy { $0.hostAddress == "0.0.0.0" })
    }

    @Test func manualForwardsParse() throws {
        #expect(try ManualForward(parsing: "8080:80") == ManualForward(hostPort: 8080, guestPort: 80))
        #expect(try ManualForward(parsing: "5432") == ManualForward(hostPort: 5432, guestPort: 5432))
        #expect(try ManualForward(parsing: "5353:53/udp") == ManualForward(hostPort: 5353, guestPort: 53, proto: "udp"))
        #expect(try ManualForward(parsing: "8080/TCP") == ManualForward(hostPort: 8080, guestPort: 8080))
        for bad in ["", "0:80", "80:70000", "a:b", "1:2:3", "53/sctp", "53/", "/udp"] {
            #expect(throws: MachineError.self) { try ManualForward(parsing: bad) }
        }
        #expect(throws: MachineError.self) { try PortForwards.validateAddress("localhost") }
        try PortForwards.validateAddress("::1")
    }

    @Test func aManualForwardKeptBeforeUDPIsTCP() throws {
        let old = try JSONDecoder().decode(ManualForward.self, from: Data(#"{"hostPort": 8080, "guestPort": 80}"#.utf8))
        #expect(old.proto == "tcp" && old.description == "8080:80")
    }
}
