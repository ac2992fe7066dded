import HostOS
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
                let name = target.name
                let machines: Machines
                do throws(MachineError) {
                    machines = try global.machines(for: name)
                } catch {
                    // A machine whose remote libvirt host is gone for good must not stay
                    // here for ever: --force removes what this host has of it.
                    guard let config = try? MachineStore(paths: Paths()).config(name), config.connect != nil, error.kind != .usage else { throw error }
                    guard force else {
                        throw MachineError(error.message, hint: (error.hint.map { $0 + "; or " } ?? "") + "`machine rm --force \(name)` removes it from this host only")
                    }
                    DockerContext(machine: name, paths: Paths()).remove()
                    let left = try Machines.forgetUnreachable(name, config: config, paths: Paths())
                    StandardStream.error.write("warning: \(error.message)\nremoved \(name) from this host only: \(left)\n")
                    print("removed \(name)")
                    return
                }
                let context = DockerContext(machine: name, paths: machines.paths)
                try machines.remove(name, force: force)
                context.remove()
                print("removed \(name)")
                // Its mark went with its folder: the last marked machine takes the unit along.
                for line in try AutostartService.current(paths: machines.paths).removeUnlessMarked(Autostart.marked(machines)) { print(line) }
            }
        }
    }
}
