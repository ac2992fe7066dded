import Foundation
import HostOS
import Testing

@Suite struct HostPathTests {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hostpath-\(UUID().uuidString)").path

    @Test func kindsOfNodesAreToldApartWithAndWithoutFollowingLinks() throws {
        try HostPath.makeFolder(folder, mode: 0o700)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Data("x".utf8).write(to: URL(fileURLWithPath: folder + "/file"))
        try FileManager.default.createSymbolicLink(atPath: folder + "/link", withDestinationPath: "file")
        try FileManager.default.createSymbolicLink(atPath: folder + "/dangling", withDestinationPath: "nothing")
        #expect(HostPath.isRegularFile(folder + "/file") && HostPath.isRegularFile(folder + "/link"))
        #expect(!HostPath.isRegularFile(folder + "/link", followingLinks: false))
        #expect(!HostPath.exists(folder + "/dangling") && HostPath.exists(folder + "/dangling", followingLinks: false))
        #expect(HostPath.size(folder + "/file") == 1 && HostPath.size(folder + "/nothing") == 0)
        #expect(HostPath.characterDevice("/dev/null") == 0x103)  // makedev(1, 3)
        #expect(HostPath.characterDevice(folder + "/file") == nil)
        // The folder was made with its mode, and a second time is EEXIST.
        #expect((try FileManager.default.attributesOfItem(atPath: folder)[.posixPermissions] as? Int) == 0o700)
        #expect(throws: SystemError.self) { try HostPath.makeFolder(folder, mode: 0o700) }
        do { try HostPath.makeFolder(folder, mode: 0o700) } catch { #expect(error.isAlreadyThere) }
    }

    @Test func aSignatureChangesWithTheNodesMode() throws {
        try HostPath.makeFolder(folder, mode: 0o700)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let before = try #require(HostPath.signature(folder))
        chmod(folder, 0o755)
        #expect(HostPath.signature(folder) != before)
        #expect(HostPath.signature(folder + "/none") == nil)
    }

    @Test func aLinkIsReplacedInOneStepAndRenameReplacesAFile() throws {
        try HostPath.makeFolder(folder, mode: 0o700)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try HostPath.replaceLink(folder + "/latest", pointingTo: "one")
        try HostPath.replaceLink(folder + "/latest", pointingTo: "two")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: folder + "/latest") == "two")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["latest"])  // no temporary left
        try Data("a".utf8).write(to: URL(fileURLWithPath: folder + "/a"))
        try Data("b".utf8).write(to: URL(fileURLWithPath: folder + "/b"))
        try HostPath.rename(folder + "/a", to: folder + "/b")
        #expect(try String(contentsOfFile: folder + "/b", encoding: .utf8) == "a")
        #expect(throws: SystemError.self) { try HostPath.rename(folder + "/a", to: folder + "/c") }
    }

    @Test func whoThisProcessIs() {
        let parts = HostUser.credentials.split(separator: ":", omittingEmptySubsequences: false)
        #expect(parts.count == 3 && parts[0] == "\(getuid())" && parts[1] == "\(getgid())")
        #expect(HostUser.isRoot == (getuid() == 0))
    }

    @Test func numericAddressesAreKnownFromNames() {
        #expect(LocalSocket.isIPAddress("127.0.0.1") && LocalSocket.isIPAddress("::1") && LocalSocket.isIPAddress("0.0.0.0"))
        #expect(!LocalSocket.isIPAddress("localhost") && !LocalSocket.isIPAddress("1.2.3") && !LocalSocket.isIPAddress(""))
    }
}
