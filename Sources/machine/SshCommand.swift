import ArgumentParser
import Foundation
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
                let machines = try global.machines()
                let config = try machines.store.config(target.name)
                let guest = GuestSSH(name: target.name, port: config.sshPort, files: machines.store.files(target.name))
                let session = try guest.connect()
                let terminal = isatty(STDIN_FILENO) != 0 && (command.isEmpty || forceTerminal)
                // Like OpenSSH: the words are joined with spaces and the remote shell parses them.
                status = try GuestShell(session: session, guest: guest)
                    .run(command: command.isEmpty ? nil : command.joined(separator: " "), terminal: terminal)
            }
            if status != 0 { throw ExitCode(status) }
        }
    }

    struct SshConfig: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ssh-config",
            abstract: "Print an OpenSSH config block for a machine (host key pinned).",
            discussion: """
                EXAMPLES:
                  machine ssh-config > ~/.ssh/machine.conf && ssh -F ~/.ssh/machine.conf machine-default
                  machine ssh-config dev >> ~/.ssh/config && scp file machine-dev:/tmp/
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument

        func run() throws {
            try perform { () throws(MachineError) in
                let info = try global.machines().info(target.name)
                print("""
                    Host \(MachineName.sshAlias(target.name))
                      HostName \(info.ssh.host)
                      Port \(info.ssh.port)
                      User \(info.ssh.user)
                      IdentityFile "\(info.ssh.identityFile)"
                      IdentitiesOnly yes
                      UserKnownHostsFile "\(info.ssh.knownHostsFile)"
                      StrictHostKeyChecking yes
                      PasswordAuthentication no
                      LogLevel ERROR
                    """)
            }
        }
    }

    struct Cp: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a file between the host and a machine (NAME:PATH is in the machine).",
            discussion: """
                Bytes and permission bits are kept. The copy is written under a temporary
                name and renamed into place. On the host, a symlink inside a folder shared
                with any machine is never followed (a machine may have put it there): as the
                destination it is replaced, as the source it is refused.

                EXAMPLES:
                  machine cp ./app.conf default:/etc/app.conf
                  machine cp dev:/var/log/docker.log .
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "What to copy: a host path or NAME:PATH.") var source: String
        @Argument(help: "Where to: a host path or NAME:PATH.") var destination: String

        func run() throws {
            try perform { () throws(MachineError) in
                let from = GuestCopy.Location(source)
                let to = GuestCopy.Location(destination)
                let machines = try global.machines()
                func copier(_ name: String) throws(MachineError) -> GuestCopy {
                    let config = try machines.store.config(name)
                    let guest = GuestSSH(name: name, port: config.sshPort, files: machines.store.files(name))
                    return try GuestCopy(session: try guest.connect(), guest: guest, walker: machines.sharesWalker())
                }
                switch (from, to) {
                case (.host(let local), .guest(let name, let remote)):
                    try copier(name).upload(local, to: remote)
                case (.guest(let name, let remote), .host(let local)):
                    try copier(name).download(remote, to: local)
                default:
                    throw MachineError("one side must be on the host and the other in a machine (NAME:PATH)",
                                       hint: "e.g. machine cp ./file default:/tmp/ or machine cp default:/tmp/file .", exitCode: 64)
                }
            }
        }
    }
}
