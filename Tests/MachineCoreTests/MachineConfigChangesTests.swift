import MachineCore
import Testing

/// The changes a config checks itself (`machine port add/rm`, `machine set`): a refused one
/// says why and leaves the config as it was.
struct MachineConfigChangesTests {
    @Test func aManualForwardIsRefusedOnTheSSHPortAndTwiceOnOneHostPort() throws {
        var config = MachineConfig(name: "m", sshPort: 2222)
        #expect(throws: MachineError.self) { try config.addForward(ManualForward(hostPort: 2222, guestPort: 22)) }
        try config.addForward(ManualForward(hostPort: 8080, guestPort: 80))
        // The same host port over UDP is another forward.
        try config.addForward(ManualForward(hostPort: 8080, guestPort: 80, proto: "udp"))
        let twice = #expect(throws: MachineError.self) { try config.addForward(ManualForward(hostPort: 8080, guestPort: 81)) }
        #expect(twice?.message == "host port 8080 is already forwarded")
        #expect(config.ports.count == 2)
        try config.removeForward(hostPort: 8080, proto: "udp")
        #expect(throws: MachineError.self) { try config.removeForward(hostPort: 8080, proto: "udp") }
        #expect(config.ports == [ManualForward(hostPort: 8080, guestPort: 80)])
    }

    @Test func aDataDiskOnlyGrows() throws {
        var config = MachineConfig(name: "m", sshPort: 2222)
        let size = config.diskGiB
        let shrink = #expect(throws: MachineError.self) { try config.reshape(accel: nil, cpus: 3, memoryMiB: nil, diskGiB: size - 1) }
        #expect(shrink?.kind == .usage)
        #expect(config.cpus != 3 && config.diskGiB == size)
        try config.reshape(accel: "tcg", cpus: 3, memoryMiB: 2048, diskGiB: size + 1)
        #expect(config.accel == "tcg" && config.cpus == 3 && config.memoryMiB == 2048 && config.diskGiB == size + 1)
    }
}
