import ArgumentParser
import MachineCore

extension Machine {
    struct Rm: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a machine: its libvirt domain and its own folder (data disk included).",
            discussion: """
                A running machine is refused unless --force is given. Nothing outside the
                machine's folder is touched.

                EXAMPLES:
                  machine rm dev
                  machine rm --force dev
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @Flag(name: [.short, .long], help: "Stop the machine first if it runs.") var force = false

        func run() throws {
            try perform { () throws(MachineError) in
                try global.machines(for: target.name).remove(target.name, force: force)
                DockerContext(machine: target.name).remove()
                print("removed \(target.name)")
            }
        }
    }
}
