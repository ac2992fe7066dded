import ArgumentParser
import HostAgent
import MachineCore

extension Machine {
    /// The host agent's entry point; `start` and `up` run it detached.
    struct Agent: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the host agent of a machine in the foreground (start and up run it for you).",
            discussion: """
                The agent holds one SSH session to the machine and serves its engine socket
                ($MACHINE_HOME/machines/NAME/docker.sock). It reconnects by itself when the
                session drops. Its log is agent.log in the machine's folder.
                """,
            shouldDisplay: false)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument

        func run() throws {
            try perform { () throws(MachineError) in
                let name = target.name, global = self.global
                // A machine on this host: libvirt is asked through `machine agent-libvirt`
                // processes, and never loaded here (LibvirtHelper says why).
                if let local = try LocalAgentMachine(name: name, uri: try global.uri(for: name), paths: Paths(), executable: "/proc/self/exe") {
                    return try AgentMain.serve(AgentProcess(name: name, files: local.files), guest: local.guest, udp: local.udp,
                                               watch: local.watch, loadConfig: local.trustedConfig)
                }
                // The forwards it opens come from the config as machine wrote it, never from
                // one a guest rewrote through a share (see Machines.trustedConfig).
                let loadConfig = { () throws(MachineError) -> MachineConfig in try global.machines(for: name).trustedConfig(name) }
                let machines = try global.machines(for: name)
                try AgentMain.serve(AgentProcess(name: name, files: machines.files(name)), guest: try machines.guest(name),
                                    udp: machines.qemuForwards(name), watch: machines.domainWatch(name), loadConfig: loadConfig)
            }
        }
    }
}
