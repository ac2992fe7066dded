import Foundation
@testable import MachineCore
import Testing

/// What a boot was made of, as the boot writes it to the machine's folder.
@Suite struct BootRecordTests {
    @Test func theTransportEachShareGotIsKeptAndASavedStateStillMatches() throws {
        let home = try TestHome()
        let builds = try home.builds(image: "i1", engine: "e1")
        var config = home.first
        config.mounts = [Share(hostPath: "/home/u", guestPath: "/home/u"), Share(hostPath: "/data", guestPath: "/data", readOnly: true)]
        let shares = [SharedFolder(tag: "machine-share0", share: config.mounts[0], transport: .virtiofs(binary: "/usr/lib/qemu/virtiofsd")),
                      SharedFolder(tag: "machine-share1", share: config.mounts[1], transport: .ninep)]
        let files = home.store.files("dev")
        try BootRecord(config, builds: builds, shares: shares).save(files)
        let kept = try #require(BootRecord.last(files))
        #expect(kept.transports == ["/home/u": "virtiofs", "/data": "9p"])
        #expect(kept.builds?.engine.folder.lastPathComponent == "e1")
        // A boot now is compared without transports (it has not chosen them yet).
        #expect(kept.isSameBoot(as: BootRecord(config, builds: builds)))
        config.memoryMiB = 2048
        #expect(!kept.isSameBoot(as: BootRecord(config, builds: builds)))
    }

    /// Records written before transports were kept still read, and still match.
    @Test func anOlderRecordStillReads() throws {
        let home = try TestHome()
        let builds = try home.builds(image: "i1", engine: "e1")
        let files = home.store.files("dev")
        let old = #"{"image": "\#(builds.image!.folder.path)", "bundle": "\#(builds.engine.folder.path)", "cpus": 2, "memoryMiB": 1024, "mounts": [], "mountType": "auto"}"#
        try old.write(to: files.bootRecord, atomically: true, encoding: .utf8)
        let kept = try #require(BootRecord.last(files))
        #expect(kept.transports == nil)
        #expect(kept.isSameBoot(as: BootRecord(home.first, builds: builds)))
    }
}
