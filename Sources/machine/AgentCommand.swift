import ArgumentParser
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

        @OptionGroup var target: NameArgument

        func run() throws {
            try perform { () throws(MachineError) in
                let store = MachineStore(paths: Paths())
                let config = try store.config(target.name)
                try AgentProcess(name: target.name, files: store.files(target.name)).serve(port: config.sshPort, store: store)
            }
        }
    }
}
