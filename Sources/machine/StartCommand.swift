import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a machine, its engine and the host agent that forwards the engine socket.",
            discussion: """
                Uses the last image `machine image build` made (building one if there is
                none; run `machine image build` to pick up newer Debian packages). The SSH
                host key the guest prints on its console at first boot is pinned; a
                different key later is refused. The engine is installed or updated when the
                machine has another version than the last built bundle. `machine up` does
                this and also creates the machine and a docker context. A machine saved by
                `machine suspend` is resumed as it was (`machine resume` says the same).

                EXAMPLES:
                  machine start
                  machine start dev
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @OptionGroup var configTrust: ConfigTrustOptions

        func run() throws {
            try perform { () throws(MachineError) in
                let machines = try global.machines(for: target.name)
                configTrust.apply(to: machines)
                let started = try machines.start(target.name)
                if started.alreadyRunning {
                    print("\(target.name) is already running")
                } else if started.resumed {
                    print("\(target.name) resumed")
                } else {
                    print(target.name + String(cFormat: " is running (sshd ready at %.1f s of guest uptime)", started.sshReadyUptime ?? 0))
                }
                print("engine socket: \(DockerContext.dockerHost(socket: URL(fileURLWithPath: started.dockerSocket)))")
                Self.restoreContext(of: target.name, machines)
            }
        }

        /// The machine's docker context, made again if it went while docker still uses it
        /// (every `docker` command would fail with "context not found"): by start, restart,
        /// resume and up.
        static func restoreContext(of name: String, _ machines: Machines) {
            if let context = DockerContext(machine: name, paths: machines.paths).restoreIfCurrent() {
                machines.progress("the docker context \(context) was missing while docker used it: made it again")
            }
        }
    }
}
