import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Suspend: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Save a running machine's memory to disk and stop it; resume brings it back as it was.",
            discussion: """
                Containers keep running across a suspend and resume: their processes, their
                published ports and the engine come back as they were, and the guest's clock
                is set to the host's. The saved state takes about as much disk as the machine's
                memory in use. `machine stop` of a suspended machine resumes it first, so it
                still shuts down cleanly; a saved state made with another image, engine or
                shape is thrown away at the next start, which then boots afresh.

                EXAMPLES:
                  machine suspend
                  machine resume
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument

        func run() throws {
            try perform { () throws(MachineError) in
                try global.machines(for: target.name).suspend(target.name)
                print("\(target.name) suspended (`machine resume\(MachineName.commandSuffix(target.name))` brings it back)")
            }
        }
    }
}
