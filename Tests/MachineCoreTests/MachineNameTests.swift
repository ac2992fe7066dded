import Foundation
import MachineCore
import Testing

@Suite struct MachineNameTests {
    @Test(arguments: ["default", "dev-1", "a", String(repeating: "x", count: 63), "0abc"])
    func accepted(name: String) throws {
        try MachineName.validate(name)
    }

    @Test(arguments: ["", "-dev", "Dev", "my machine", "a/b", "../etc", "dév", String(repeating: "x", count: 64), "a_b", "a.b"])
    func refusedWithAHint(name: String) {
        do {
            try MachineName.validate(name)
            Issue.record("\(name) was accepted")
        } catch {
            #expect(error.hint?.contains("lowercase letters") == true)
            #expect(error.kind == .usage)
        }
    }
}
