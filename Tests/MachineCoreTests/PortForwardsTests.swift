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
        {"IP": "0.0.0.0", "PrivatePort": 22, "PublicPort": 2222, "Type": "tcp"}]}
    ]
    """#.utf8)

    @Test func publishedPortsAreForwardedFromThePublishAddressOnly() {
        let forwards = PortForwards.automatic(containersJSON: containers, publishAddress: "127.0.0.1", sshPort: 2222)
        #expect(forwards.map(\.hostPort) == [5353, 8080, 8081])
        let web = forwards.first { $0.hostPort == 8080 }
        #expect(web?.hostAddress == "127.0.0.1" && web?.guestAddress == "127.0.0.1" && web?.guestPort == 8080 && web?.container == "web")
        // Asked for 127.0.0.1 in the guest: still only 127.0.0.1 on the host.
        #expect(forwards.first { $0.hostPort == 8081 }?.hostAddress == "127.0.0.1")
        #expect(forwards.first { $0.hostPort == 5353 }?.proto == "udp")
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
        for bad in ["", "0:80", "80:70000", "a:b", "1:2:3"] {
            #expect(throws: MachineError.self) { try ManualForward(parsing: bad) }
        }
        #expect(throws: MachineError.self) { try PortForwards.validateAddress("localhost") }
        try PortForwards.validateAddress("::1")
    }
}
