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
                """)

        enum ShellKind: String, ExpressibleByArgument, CaseIterable {
            case sh, bash, zsh, fish
        }

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @Option(help: "The shell to print for: sh, bash, zsh or fish (default: from $SHELL).") var shell: ShellKind?
        @Flag(help: "Print the commands that undo it.") var unset = false

        func run() throws {
            try perform { () throws(MachineError) in
                let kind = shell ?? ShellKind(rawValue: URL(fileURLWithPath: ProcessInfo.processInfo.environment["SHELL"] ?? "sh").lastPathComponent) ?? .sh
                let machines = try global.machines()
                let files = machines.files(target.name)
                _ = try machines.config(target.name)
                let host = DockerContext.dockerHost(socket: files.dockerSocket)
                switch (kind, unset) {
                case (.fish, false):
                    print("set -gx DOCKER_HOST \(Self.quote(host));")
                case (.fish, true):
                    print("set -e DOCKER_HOST;")
                case (_, false):
                    print("export DOCKER_HOST=\(Self.quote(host))")
                case (_, true):
                    print("unset DOCKER_HOST")
                }
                if !unset {
                    print("# Run this command to configure your shell:\n# eval \"$(machine env\(target.name == MachineName.default ? "" : " " + target.name))\"")
                }
            }
        }

        /// Single quotes for sh and fish alike: a path with spaces or quotes stays one word.
        static func quote(_ text: String) -> String {
            "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }
    }
}
