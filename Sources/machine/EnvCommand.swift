import ArgumentParser
import Foundation
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
                  & machine env --shell powershell | Invoke-Expression
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @Option(help: "The shell to print for: sh, bash, zsh, fish, tcsh, powershell or cmd (default: from $SHELL).") var shell: ShellEnvironment.Shell?
        @Flag(help: "Print the commands that undo it.") var unset = false

        func run() throws {
            try perform { () throws(MachineError) in
                let kind = shell ?? ShellEnvironment.Shell(path: ProcessInfo.processInfo.environment["SHELL"] ?? "sh") ?? .sh
                let machines = try global.machines()
                let files = machines.files(target.name)
                _ = try machines.config(target.name)
                if unset {
                    print(ShellEnvironment.unset("DOCKER_HOST", shell: kind))
                    return
                }
                print(ShellEnvironment.set("DOCKER_HOST", DockerContext.dockerHost(socket: files.dockerSocket), shell: kind))
                let command = "machine env" + (target.name == MachineName.default ? "" : " " + target.name)
                    + (shell.map { " --shell \($0.rawValue)" } ?? "")
                print(ShellEnvironment.usage(of: command, shell: kind))
            }
        }
    }
}

extension ShellEnvironment.Shell: ExpressibleByArgument {}
