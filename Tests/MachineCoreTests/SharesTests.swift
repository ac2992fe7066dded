import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import MachineCore
import Testing
import Virt

@Suite struct SharesTests {
    /// A scratch folder with a subfolder, a file and a symlink, removed at the end.
    final class Scratch {
        let root: String
        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("shares-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: root + "/with space/ü", withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: root + "/file", contents: Data())
            try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: root + "/with space")
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }
    }

    @Test func specsResolveToCanonicalFoldersAtTheSamePath() throws {
        let s = try Scratch()
        let real = realpath(s.root, nil).map { p in defer { free(p) }; return String(cString: p) }!
        let plain = try Shares.resolve(spec: s.root + "/with space")
        #expect(plain == Share(hostPath: real + "/with space", guestPath: real + "/with space", readOnly: false))
        let viaLink = try Shares.resolve(spec: "link:/src:ro", currentDirectory: s.root)
        #expect(viaLink == Share(hostPath: real + "/with space", guestPath: "/src", readOnly: true))
        let home = try Shares.resolve(spec: "~/ü", home: s.root + "/with space")
        #expect(home.hostPath == real + "/with space/ü")
        #expect(try Shares.resolve(spec: s.root + ":rw").readOnly == false)
    }

    @Test func badSpecsAreRefusedWithTheReason() throws {
        let s = try Scratch()
        for spec in [s.root + "/missing", s.root + "/file", "", s.root + ":/a:/b:ro", s.root + ":", s.root + ":relative",
                     s.root + ":/", s.root + ":/etc", s.root + ":/var/lib/docker/x", s.root + ":/a/../etc"] {
            #expect(throws: MachineError.self, "\(spec)") { try Shares.resolve(spec: spec) }
        }
    }

    @Test func listsRefuseDuplicatesAndMachineStateAndPutOuterFoldersFirst() throws {
        let s = try Scratch()
        let outer = try Shares.resolve(spec: s.root)
        let inner = try Shares.resolve(spec: s.root + "/with space")
        #expect(try Shares.checked([inner, outer], machineHome: "/nowhere") == [outer, inner])
        #expect(throws: MachineError.self) { try Shares.checked([outer, Share(hostPath: "/x", guestPath: outer.guestPath)], machineHome: "/nowhere") }
        #expect(throws: MachineError.self) { try Shares.checked([inner], machineHome: s.root) }
    }

    @Test func machineStateInsideAShareIsHiddenInTheGuest() throws {
        let s = try Scratch()
        let home = try Shares.resolve(spec: s.root)
        let elsewhere = try Shares.resolve(spec: s.root + "/with space/ü:/data")
        let hidden = Shares.hiddenGuestPaths([home, elsewhere], machineHome: s.root + "/with space")
        #expect(hidden == [home.guestPath + "/with space"])
    }

    static let folder = URL(fileURLWithPath: "/m")

    @Test func subordinateIdsAreReadByNameOrUid() {
        let text = "other:100000:65536\n1002:165536:65536\nbob:231072:0\nbob:296608:1000\n"
        #expect(UserVirtiofsd.subordinateRange(in: text, user: "alice", id: 1002) == .init(start: 165536, count: 65536))
        #expect(UserVirtiofsd.subordinateRange(in: text, user: "bob", id: 7) == .init(start: 296608, count: 1000))
        #expect(UserVirtiofsd.subordinateRange(in: text, user: "carol", id: 8) == nil)
        // The range a message suggests for carol lies after everyone's.
        #expect(UserVirtiofsd.freeStart(in: text) == 297608)
        #expect(UserVirtiofsd.freeStart(in: "") == 100000)
    }

    @Test func thePidsFileNamesEachVirtiofsdsShareAndForgetsDeadOnes() throws {
        let file = URL(fileURLWithPath: NSTemporaryDirectory() + "virtiofsd-\(UUID().uuidString).pids")
        defer { try? FileManager.default.removeItem(at: file) }
        // Our own pid runs; a line whose start time is wrong is a pid the kernel gave away.
        let text = UserVirtiofsd.pidsLine(getpid(), tag: "machine-share1") + "\(getpid()) 1 machine-share0\n"
        try Data(text.utf8).write(to: file)
        #expect(UserVirtiofsd.running(pidsFile: file) == ["machine-share1": getpid()])
    }

    @Test func autoPicksVirtiofsOnlyWhereItServesTheUserRight() throws {
        let rw = Share(hostPath: "/h", guestPath: "/h")
        let ro = Share(hostPath: "/r", guestPath: "/r", readOnly: true)
        let system = try Shares.devices([rw, ro], type: .auto, systemDaemon: true, machineFolder: Self.folder, isRoot: true, virtiofsd: "/usr/libexec/virtiofsd")
        #expect(system.map(\.typeName) == ["virtiofs", "9p"])
        #expect(system.map(\.tag) == ["machine-share0", "machine-share1"])
        // The session daemon: virtiofs that machine starts, where the user may map ids.
        let session = try Shares.devices([rw, ro], type: .auto, systemDaemon: false, machineFolder: Self.folder, isRoot: false, virtiofsd: "/v",
                                         userNamespace: { nil })
        #expect(session.map(\.transport) == [.userVirtiofs(binary: "/v", socket: "/m/fs0.sock"), .ninep])
        let noIds = { MachineError("no subordinate ids") }
        #expect(try Shares.devices([rw], type: .auto, systemDaemon: false, machineFolder: Self.folder, isRoot: false, virtiofsd: "/v",
                                   userNamespace: noIds).map(\.typeName) == ["9p"])
        #expect(throws: MachineError.self) {
            try Shares.devices([rw], type: .virtiofs, systemDaemon: false, machineFolder: Self.folder, isRoot: false, virtiofsd: "/v", userNamespace: noIds)
        }
        #expect(try Shares.devices([rw], type: .virtiofs, systemDaemon: false, machineFolder: Self.folder, isRoot: false, virtiofsd: "/v",
                                   userNamespace: { nil }).map(\.typeName) == ["virtiofs"])
        #expect(try Shares.devices([rw], type: .auto, systemDaemon: true, machineFolder: Self.folder, isRoot: false, virtiofsd: "/v").map(\.typeName) == ["9p"])
        #expect(try Shares.devices([rw], type: .auto, systemDaemon: true, machineFolder: Self.folder, isRoot: true, virtiofsd: nil).map(\.typeName) == ["9p"])
        #expect(try Shares.devices([rw], type: .ninep, systemDaemon: true, machineFolder: Self.folder, isRoot: true, virtiofsd: "/v").map(\.typeName) == ["9p"])
        #expect(throws: MachineError.self) { try Shares.devices([rw], type: .virtiofs, systemDaemon: false, machineFolder: Self.folder, isRoot: true, virtiofsd: "/v") }
        #expect(throws: MachineError.self) { try Shares.devices([rw], type: .virtiofs, systemDaemon: true, machineFolder: Self.folder, isRoot: false, virtiofsd: "/v") }
        #expect(throws: MachineError.self) { try Shares.devices([rw], type: .virtiofs, systemDaemon: true, machineFolder: Self.folder, isRoot: true, virtiofsd: nil) }
    }

    @Test func seedLinesAreTabSeparatedWithTheTypeAndMode() throws {
        let devices = try Shares.devices([Share(hostPath: "/h o", guestPath: "/g 'x'"), Share(hostPath: "/r", guestPath: "/r", readOnly: true)],
                                         type: .auto, systemDaemon: true, machineFolder: Self.folder, isRoot: true, virtiofsd: "/v")
        #expect(Shares.seedMounts(devices) == "machine-share0\t/g 'x'\tvirtiofs\trw\nmachine-share1\t/r\t9p\tro\n")
    }

    @Test(arguments: DomainDefinitionTests.hostileFolders)
    func hostileShareFoldersSurviveLibvirtsParserUnchanged(folder: String) throws {
        var wanted = DomainDefinitionTests().definition(folder: "/m")
        wanted.shares = [
            SharedFolder(tag: "machine-share0", share: Share(hostPath: folder, guestPath: folder), transport: .virtiofs(binary: "/usr/lib/qemu/virtiofsd")),
            SharedFolder(tag: "machine-share1", share: Share(hostPath: folder + "/ro", guestPath: "/ro", readOnly: true), transport: .ninep),
        ]
        let connection = try Connection(uri: "test:///default")
        let domain = try connection.define(xml: wanted.xml())
        defer { try? domain.undefine() }
        let document = try XMLDocument(xmlString: try domain.xml())
        #expect(try document.nodes(forXPath: "//filesystem/source/@dir").compactMap(\.stringValue) == [folder, folder + "/ro"])
        #expect(try document.nodes(forXPath: "//filesystem/target/@dir").compactMap(\.stringValue) == ["machine-share0", "machine-share1"])
        #expect(try document.nodes(forXPath: "//filesystem[readonly]/target/@dir").compactMap(\.stringValue) == ["machine-share1"])
        #expect(try document.nodes(forXPath: "//filesystem/driver/@type").compactMap(\.stringValue) == ["virtiofs", "path"])
        // virtiofsd shares guest memory; 9p alone does not need it.
        #expect(try document.nodes(forXPath: "//memoryBacking/access/@mode").first?.stringValue == "shared")
        #expect(try document.nodes(forXPath: "//disk").count == 3)  // data, seed, engine
    }

    @Test(arguments: DomainDefinitionTests.hostileFolders)
    func aVirtiofsdMachineStartsIsOnlyASocketToLibvirt(folder: String) throws {
        var wanted = DomainDefinitionTests().definition(folder: folder)
        let socket = folder + "/fs0.sock"
        wanted.shares = [SharedFolder(tag: "machine-share0", share: Share(hostPath: folder, guestPath: folder),
                                      transport: .userVirtiofs(binary: "/usr/lib/qemu/virtiofsd", socket: socket))]
        let connection = try Connection(uri: "test:///default")
        let domain = try connection.define(xml: wanted.xml())
        defer { try? domain.undefine() }
        let document = try XMLDocument(xmlString: try domain.xml())
        #expect(try document.nodes(forXPath: "//filesystem/source/@socket").compactMap(\.stringValue) == [socket])
        #expect(try document.nodes(forXPath: "//filesystem/source/@dir").isEmpty)
        #expect(try document.nodes(forXPath: "//filesystem/binary").isEmpty)
        #expect(try document.nodes(forXPath: "//filesystem/driver/@type").compactMap(\.stringValue) == ["virtiofs"])
        #expect(try document.nodes(forXPath: "//memoryBacking/access/@mode").first?.stringValue == "shared")
    }
}
