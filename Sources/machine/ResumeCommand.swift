import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring back a machine saved by `machine suspend` (or start it, if it has no saved state).",
            discussion: """
                The same as `machine start`, which resumes a suspended machine too.

                EXAMPLES:
                  machine resume
                  machine resume dev
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument

        func run() throws {
            try perform { () throws(MachineError) in
                let machines = try global.machines(for: target.name)
                let started = try machines.start(target.name)
                print(started.resumed ? "\(target.name) resumed"
                                      : started.alreadyRunning ? "\(target.name) is already running" : "\(target.name) was not suspended; it booted")
                Start.restoreContext(of: target.name, machines)
            }
        }
    }
}
