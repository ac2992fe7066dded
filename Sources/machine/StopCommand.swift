import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a machine: a clean shutdown, or a hard stop after the timeout.",
            discussion: """
                EXAMPLES:
                  machine stop
                  machine stop dev --timeout 10
                  machine stop dev --force             # pull the plug at once
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @Flag(help: "Stop at once, without a clean shutdown.") var force = false
        @Option(help: "Seconds to wait for a clean shutdown before stopping hard.") var timeout = 60

        func run() throws {
            try perform { () throws(MachineError) in
                let clean = try global.machines(for: target.name).stop(target.name, force: force, timeout: Double(timeout))
                print(clean ? "\(target.name) stopped" : "\(target.name) stopped (hard stop)")
            }
        }
    }
}
