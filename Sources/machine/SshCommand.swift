import ArgumentParser
import FoundationEssentials
import Glibc  // isatty(3): a terminal gets an interactive shell
import MachineCore

extension Machine {
    struct Ssh: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open a shell in a machine, or run one command there.",
            discussion: """
                Logs in as root with the machine's own key; the guest's host key must be the
                one pinned at its first boot. With a command, its exit status becomes
                machine's own, and standard input is passed to it.

                EXAMPLES:
                  machine ssh
                  machine ssh dev -- df -h /var/lib/docker
                  machine ssh -- cat /var/log/docker.log | less
                  tar -c . | machine ssh -- tar -C /tmp -x
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @Flag(name: .customShort("t"), help: "Give the command a terminal even though it was named.") var forceTerminal = false
        @Argument(parsing: .postTerminator, help: "The command to run (after --).") var command: [String] = []

        func run() throws {
            var status: Int32 = 0
            try perform { () throws(MachineError) in
                let machines = try global.machines(for: target.name)
                let guest = try machines.awakeGuest(target.name)
                let session = try guest.connect()
                let terminal = isatty(STDIN_FILENO) != 0 && (command.isEmpty || forceTerminal)
                // Like OpenSSH: the words are joined with spaces and the remote shell parses them.
                status = try GuestShell(session: session, guest: guest)
                    .run(command: command.isEmpty ? nil : command.joined(separator: " "), terminal: terminal)
            }
            if status != 0 { throw ExitCode(status) }
        }
    }
}
