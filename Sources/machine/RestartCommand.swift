import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Restart: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a machine cleanly, then start it again.",
            discussion: "EXAMPLES:\n  machine restart\n  machine restart dev")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @OptionGroup var configTrust: ConfigTrustOptions

        func run() throws {
            try perform { () throws(MachineError) in
                let machines = try global.machines(for: target.name)
                configTrust.apply(to: machines)
                try machines.stop(target.name, force: false)
                let started = try machines.start(target.name)
                print(target.name + String(cFormat: " restarted (sshd ready at %.1f s of guest uptime)", started.sshReadyUptime ?? 0))
                Start.restoreContext(of: target.name, machines)
            }
        }
    }
}
