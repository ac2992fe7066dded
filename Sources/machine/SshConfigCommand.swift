import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
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
                let info = try global.machines(for: target.name).info(target.name)
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
                    """ + (info.ssh.proxyCommand.map { "\n  ProxyCommand \($0)" } ?? ""))
            }
        }
    }
}
