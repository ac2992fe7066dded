import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Env: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the shell commands that point docker at a machine (DOCKER_HOST).",
            discussion: """
                EXAMPLES:
                  eval "$(machine env)"
                  machine env dev --shell fish | source
                  eval "$(machine env --unset)"
                  eval `machine env --shell tcsh`
                  eval "$(machine env --tls)"     # DOCKER_HOST=tcp://127.0.0.1:PORT with DOCKER_TLS_VERIFY=1
                  & machine env --shell powershell | Invoke-Expression
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @Option(help: "The shell to print for: sh, bash, zsh, fish, tcsh, powershell or cmd (default: from $SHELL).") var shell: ShellEnvironment.Shell?
        @Flag(help: "Print the commands that undo it.") var unset = false
        @Flag(help: "Point docker at the machine's TLS endpoint (DOCKER_HOST=tcp://..., DOCKER_CERT_PATH, DOCKER_TLS_VERIFY; see `machine up --tls`).")
        var tls = false

        func run() throws {
            try perform { () throws(MachineError) in
                let kind = shell ?? ShellEnvironment.Shell(path: ProcessInfo.processInfo.environment["SHELL"] ?? "sh") ?? .sh
                let machines = try global.machines(for: target.name)
                let files = machines.files(target.name)
                _ = try machines.config(target.name)
                if unset {
                    // All three: a shell set up with --tls keeps no TLS variable pointing elsewhere.
                    for name in ["DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"] { print(ShellEnvironment.unset(name, shell: kind)) }
                    return
                }
                let variables = tls ? try machines.tlsEnvironment(target.name)
                    : [("DOCKER_HOST", DockerContext.dockerHost(socket: files.dockerSocket))]
                for (name, value) in variables { print(ShellEnvironment.set(name, value, shell: kind)) }
                let environment = ProcessInfo.processInfo.environment
                if tls, let bundle = ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"].first(where: { environment[$0] != nil }) {
                    var standardError = StandardError()
                    print("note: \(bundle) is set; Python's docker SDK (requests) then trusts it instead of DOCKER_CERT_PATH's ca.pem: unset REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE for it",
                          to: &standardError)
                }
                let command = "machine env" + (tls ? " --tls" : "") + MachineName.commandSuffix(target.name)
                    + (shell.map { " --shell \($0.rawValue)" } ?? "")
                print(ShellEnvironment.usage(of: command, shell: kind))
            }
        }
    }
}

extension ShellEnvironment.Shell: ExpressibleByArgument {}
