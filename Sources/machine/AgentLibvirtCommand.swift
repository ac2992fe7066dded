import ArgumentParser
import MachineCore

extension Machine {
    /// libvirt's answers for the agent of a machine on this host (LibvirtHelper), one
    /// question per process.
    struct AgentLibvirt: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: LibvirtHelper.command,
            abstract: "Ask libvirt for a machine's agent (the agent runs it; it keeps libvirt out of its own memory).",
            discussion: """
                look UUID, pause UUID, resume UUID: the domain of that boot; config: the
                machine's trusted config as JSON; monitor COMMAND...: QEMU's answers to HMP
                commands as a JSON array.
                """,
            shouldDisplay: false)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @Argument(help: "look, pause, resume, config or monitor.") var verb: String
        @Argument(parsing: .allUnrecognized, help: "The UUID, or the HMP commands.") var arguments: [String] = []

        func run() throws {
            try perform { () throws(MachineError) in
                guard let verb = LibvirtHelper.Verb(rawValue: verb) else {
                    throw MachineError("no such question: \(verb)", kind: .usage)
                }
                let machines = try global.machines(for: target.name)
                // Its answer is all it prints.
                machines.progress = { _ in }
                let answer = try LibvirtHelper.answer(machines: machines, name: target.name, verb: verb, arguments: arguments)
                if !answer.isEmpty { print(answer) }
            }
        }
    }
}
