import ArgumentParser
import HostOS
import MachineCore

@main
struct Machine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "machine",
        abstract: "A container engine in a tiny Linux VM, used from the host's own docker CLI.",
        discussion: """
            EXIT STATUS:
              0  success
              1  the operation failed; the message says why and what to do
              64 bad command-line usage
              69 a host program it needs is not installed (the hint names the package)
            """,
        version: "0.1.0",
        subcommands: [Up.self, Create.self, Start.self, Stop.self, Restart.self, Suspend.self, Resume.self, Set.self, Upgrade.self, Rm.self, Ls.self, Status.self, Inspect.self, Ip.self, Logs.self, Ssh.self, SshConfig.self, Cp.self, Env.self, RegenerateCerts.self, Port.self, Image.self, Autostart.self, HostCheck.self, Agent.self, AgentLibvirt.self]
    )

    static func main() {
        SignalFlags.ignoreBrokenPipes()
        main(nil)
    }
}

/// Prints a MachineError the way every command does and exits with the status of its kind.
func fail(_ error: MachineError) -> ExitCode {
    var standardError = StandardError()
    print("error: \(error)", to: &standardError)
    return exitStatus(error.kind)
}

/// The exit status of each kind of failure (sysexits.h's for usage and unavailable).
func exitStatus(_ kind: MachineError.Kind) -> ExitCode {
    switch kind {
    case .usage: ExitCode(64)
    case .unavailable: ExitCode(69)
    case .notFound, .foreignDomain, .configChanged, .host, .failed: ExitCode(1)
    }
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        StandardStream.error.write(string)
    }
}
