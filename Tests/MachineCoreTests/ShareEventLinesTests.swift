import Foundation
import Glibc
import Testing
@testable import MachineCore

@Suite struct ShareEventLinesTests {
    let lines = ShareEventLines(shares: [
        Share(hostPath: "/home/me", guestPath: "/home/me"),
        Share(hostPath: "/home/me/src", guestPath: "/src"),
        Share(hostPath: "/data", guestPath: "/data", readOnly: true),
    ])

    @Test func aHostPathBecomesTheGuestPathOfItsInnermostReadWriteShare() {
        #expect(lines.roots == ["/home/me/src", "/home/me"])
        #expect(lines.line(mask: UInt32(IN_MODIFY), cookie: 0, hostPath: "/home/me/src/app/main.go") == "modify 0 /src/app/main.go\n")
        #expect(lines.line(mask: UInt32(IN_CREATE) | UInt32(IN_ISDIR), cookie: 0, hostPath: "/home/me/notes dir") == "createdir 0 /home/me/notes dir\n")
        #expect(lines.line(mask: UInt32(IN_MOVED_TO), cookie: 42, hostPath: "/home/me/src/b") == "movedto 42 /src/b\n")
        // Read-only shares, paths outside every share, names a line cannot carry: nothing.
        #expect(lines.line(mask: UInt32(IN_MODIFY), cookie: 0, hostPath: "/data/x") == nil)
        #expect(lines.line(mask: UInt32(IN_MODIFY), cookie: 0, hostPath: "/home/meo/x") == nil)
        #expect(lines.line(mask: UInt32(IN_MODIFY), cookie: 0, hostPath: "/home/me/a\nb") == nil)
        #expect(lines.line(mask: UInt32(IN_OPEN), cookie: 0, hostPath: "/home/me/x") == nil)
    }

    @Test func noinotifyAndReadOnlySharesRaiseNothingEvenInsideAnother() throws {
        let quiet = ShareEventLines(shares: [
            Share(hostPath: "/home/me", guestPath: "/home/me"),
            Share(hostPath: "/home/me/big", guestPath: "/big", inotify: false),
            Share(hostPath: "/home/me/ref", guestPath: "/ref", readOnly: true),
        ])
        #expect(quiet.roots == ["/home/me"])
        #expect(quiet.line(mask: UInt32(IN_MODIFY), cookie: 0, hostPath: "/home/me/big/x") == nil)
        #expect(quiet.line(mask: UInt32(IN_MODIFY), cookie: 0, hostPath: "/home/me/ref/x") == nil)
        #expect(quiet.line(mask: UInt32(IN_MODIFY), cookie: 0, hostPath: "/home/me/x") == "modify 0 /home/me/x\n")
        // The option is parsed in any order with ro, and old configs (no key) keep events on.
        let folder = NSTemporaryDirectory()
        #expect(try Shares.resolve(spec: "\(folder):/g:noinotify:ro").inotify == false)
        #expect(try Shares.resolve(spec: "\(folder):/g:rw:noinotify").readOnly == false)
        #expect(try Shares.resolve(spec: folder).inotify == true)
        let old = try JSONDecoder().decode(Share.self, from: Data(#"{"hostPath":"/h","guestPath":"/h","readOnly":false}"#.utf8))
        #expect(old.inotify)
        // And a config names the option only when it is off, so it reads as the user wrote it.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(String(decoding: try encoder.encode(old), as: UTF8.self) == #"{"guestPath":"/h","hostPath":"/h","readOnly":false}"#)
        let off = try JSONDecoder().decode(Share.self, from: try encoder.encode(Share(hostPath: "/h", guestPath: "/h", inotify: false)))
        #expect(!off.inotify)
    }

    @Test func aShareOfTheWholeHostMapsEveryPath() {
        let root = ShareEventLines(shares: [Share(hostPath: "/", guestPath: "/host")])
        #expect(root.line(mask: UInt32(IN_DELETE), cookie: 0, hostPath: "/etc/x") == "delete 0 /host/etc/x\n")
    }
}
