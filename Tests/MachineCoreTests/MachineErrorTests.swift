import Foundation
import HostOS
import MachineCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct MachineErrorTests {
    @Test func aHostFailureKeepsItsCauseAndGetsTheHintAUserNeeds() {
        let full = MachineError(SystemError("write /home/u/.machine/machines/dev/config.json", code: ENOSPC))
        #expect(full.kind == .host)
        #expect(full.hint == "the disk is full: free some space and try again")
        #expect((full.cause as? SystemError)?.code == ENOSPC)
        #expect(full.message == "cannot write /home/u/.machine/machines/dev/config.json: No space left on device")
        #expect(MachineError(SystemError("run xorriso", code: ENOENT)).hint?.contains("host-setup.sh") == true)
        #expect(MachineError(SystemError("read /x", code: EACCES)).hint == nil)
    }

    @Test func aMissingMachineIsNotFound() throws {
        let store = MachineStore(paths: Paths(environment: ["MACHINE_HOME": "/nonexistent/machine-home"]))
        #expect(throws: MachineError.self) { try store.config("dev") }
        do {
            _ = try store.config("dev")
        } catch {
            #expect(error.kind == .notFound)
        }
    }
}
