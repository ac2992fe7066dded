import Foundation
@testable import MachineCore
import Testing

/// A machine's config in its two copies (config.json and the one kept in libvirt), with a
/// recorder in memory standing in for the domain's metadata.
@Suite struct ConfigCopiesTests {
    typealias Home = TestHome

    @Test func aSaveWritesBothCopies() throws {
        let home = try Home()
        let machine = try LockedMachine("dev", copies: home.copies())
        #expect(try machine.change { $0.memoryMiB = 2048 })
        #expect(try !machine.change { $0.memoryMiB = 2048 })
        #expect(try home.onDisk().memoryMiB == 2048)
        #expect(try MachineConfig.decode(home.recorder.copy!.config).memoryMiB == 2048)
    }

    /// The recorded copy is written first: a save stopped before config.json (a full disk, a
    /// kill) leaves config.json as it was, which the next command completes rather than
    /// refusing machine's own change as foreign.
    @Test func aSaveInterruptedBetweenItsWritesIsCompletedByTheNextCommand() throws {
        let home = try Home()
        let config = home.store.files("dev").config
        let before = try Data(contentsOf: config)
        do {
            let machine = try LockedMachine("dev", copies: home.copies())
            _ = try machine.config()
            // config.json cannot be replaced now (a folder with something in it is in its way).
            try FileManager.default.removeItem(at: config)
            try FileManager.default.createDirectory(at: config.appendingPathComponent("x"), withIntermediateDirectories: true)
            #expect(throws: MachineError.self) { try machine.change { $0.cpus = 4 } }
            try FileManager.default.removeItem(at: config)
            try before.write(to: config)
        }
        let machine = try LockedMachine("dev", copies: home.copies())
        #expect(try machine.config().cpus == 4)
        #expect(try home.onDisk().cpus == 4)
        #expect(home.lines.contains { $0.contains("left half-saved") && $0.contains("cpus") })
    }

    @Test func aForeignChangeIsRefusedTakenOrPutBack() throws {
        let home = try Home()
        var edited = home.first
        edited.ports = [ManualForward(hostPort: 80, guestPort: 80)]
        try edited.encoded().write(to: home.store.files("dev").config)
        #expect {
            try home.copies().trusted("dev")
        } throws: { ($0 as? MachineError)?.kind == .configChanged }

        #expect(try home.copies(.restore).trusted("dev") == home.first)
        #expect(try home.onDisk() == home.first)

        try edited.encoded().write(to: home.store.files("dev").config)
        #expect(try home.copies(.accept).trusted("dev") == edited)
        #expect(try home.copies().trusted("dev") == edited)
    }

    /// The config a save replaced is no way in for a guest: writing it back into config.json
    /// gives machine's newer one, never something machine did not write.
    @Test func anOldConfigWrittenBackGivesTheLatestNotTheOld() throws {
        let home = try Home()
        let machine = try LockedMachine("dev", copies: home.copies())
        try machine.change { $0.hostAccess = false }
        try home.first.encoded().write(to: home.store.files("dev").config)
        #expect(try home.copies().trusted("dev").hostAccess == false)
    }

    /// Verbs that do not act on the config (stop, suspend) take the lock without trusting it.
    @Test func theLockIsHadWithoutAskingForTheConfig() throws {
        let home = try Home()
        var edited = home.first
        edited.cpus = 8
        try edited.encoded().write(to: home.store.files("dev").config)
        let machine = try LockedMachine("dev", copies: home.copies())
        #expect(throws: MachineError.self) { try LockedMachine("dev", copies: home.copies()) }
        #expect(throws: MachineError.self) { try machine.config() }
    }
}
