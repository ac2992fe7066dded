import Foundation
import MachineCore
import Testing

struct CopyLocationTests {
    @Test func machineColonPathIsInTheMachine() {
        #expect(GuestCopy.Location("default:/tmp/x") == .guest(machine: "default", path: "/tmp/x"))
        #expect(GuestCopy.Location("dev-1:") == .guest(machine: "dev-1", path: "."))
    }

    @Test func everythingElseIsOnTheHost() {
        #expect(GuestCopy.Location("./a:b") == .host("./a:b"))
        #expect(GuestCopy.Location("/x:y") == .host("/x:y"))
        #expect(GuestCopy.Location("Upper:file") == .host("Upper:file"))
        #expect(GuestCopy.Location("plain") == .host("plain"))
    }
}
