import Foundation
@testable import MachineCore
import Testing

@Suite struct AgentProcessTests {
    @Test func theAgentsCommandLineIsReadBackAsItIsWritten() {
        let argv = AgentProcess.commandLine(executable: "/usr/bin/machine", uri: "qemu:///system", name: "dev")
        #expect(AgentProcess.machine(ofAgent: argv) == "dev")
        #expect(AgentProcess.machine(ofAgent: ["/usr/bin/machine", "up", "--connect", "qemu:///system", "dev"]) == nil)
        #expect(AgentProcess.machine(ofAgent: Array(argv.prefix(4))) == nil)
    }

    /// The package's prerm names running machines from their agents' command lines, in shell
    /// (the binary may be gone by then): the words it takes must be where the agent has them.
    @Test func thePackagesPrermReadsTheAgentsCommandLineWhereItIs() throws {
        let prerm = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../packaging/debian/prerm")
        let text = try String(contentsOf: prerm, encoding: .utf8)
        // `[ "$(echo "$argv" | sed -n Kp)" = agent ]`, then the name as `sed -n Np`.
        let verb = try #require(text.firstMatch(of: /sed -n (\d+)p\)" = agent/))
        let name = try #require(text.firstMatch(of: /\$\(echo "\$argv" \| sed -n (\d+)p\) \(the agent of/))
        let argv = AgentProcess.commandLine(executable: "/usr/bin/machine", uri: "qemu:///system", name: "dev")
        #expect(argv[Int(verb.1)! - 1] == "agent")
        #expect(argv[Int(name.1)! - 1] == "dev")
    }
}
