import ArgumentParser
import Foundation
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
                this and also creates the machine and a docker context.

                EXAMPLES:
                  machine start
                  machine start dev
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument

        func run() throws {
            try perform { () throws(MachineError) in
                let started = try global.machines().start(target.name)
                if started.alreadyRunning {
                    print("\(target.name) is already running")
                } else {
                    print(String(format: "%@ is running (sshd ready at %.1f s of guest uptime)", target.name, started.sshReadyUptime ?? 0))
                }
                print("engine socket: \(DockerContext.dockerHost(socket: URL(fileURLWithPath: started.dockerSocket)))")
            }
        }
    }

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
                let clean = try global.machines().stop(target.name, force: force, timeout: Double(timeout))
                print(clean ? "\(target.name) stopped" : "\(target.name) stopped (hard stop)")
            }
        }
    }

    struct Restart: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a machine cleanly, then start it again.",
            discussion: "EXAMPLES:\n  machine restart\n  machine restart dev")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument

        func run() throws {
            try perform { () throws(MachineError) in
                let machines = try global.machines()
                try machines.stop(target.name, force: false)
                let started = try machines.start(target.name)
                print(String(format: "%@ restarted (sshd ready at %.1f s of guest uptime)", target.name, started.sshReadyUptime ?? 0))
            }
        }
    }
}
