import Foundation
import MachineCore
import Testing

@Suite struct ShellEnvironmentTests {
    /// A value that breaks naive quoting in every shell: spaces, quotes, history and
    /// expansion characters.
    static let nasty = "unix:///tmp/a b/it's \"q\" !x $HOME `id` %PATH% & ^/docker.sock"

    static func shellPath(_ name: String) -> String? {
        ["/usr/bin/", "/bin/"].map { $0 + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `script` in `shell` and returns what it printed.
    static func run(_ shell: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: shell)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.environment = ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent"]
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    @Test(arguments: [ShellEnvironment.Shell.sh, .bash, .zsh, .fish, .tcsh])
    func theShellReadsBackExactlyTheValue(shell: ShellEnvironment.Shell) throws {
        let binary = shell == .sh ? "/bin/sh" : Self.shellPath(shell.rawValue)
        // A missing shell fails rather than passes: scripts/host-setup.sh installs each.
        let found = try #require(binary, "\(shell.rawValue) is not installed: scripts/host-setup.sh installs it")
        let set = ShellEnvironment.set("DOCKER_HOST", Self.nasty, shell: shell)
        let unset = ShellEnvironment.unset("DOCKER_HOST", shell: shell)
        let flags = shell == .tcsh ? ["-f", "-c"] : ["-c"]
        let script = "\(set)\nprintenv DOCKER_HOST\n\(unset)\nprintenv DOCKER_HOST || echo gone"
        #expect(try Self.run(found, flags + [script]) == Self.nasty + "\ngone\n")
    }

    @Test func powershellAndCmdAreWrittenInTheirOwnSyntax() {
        #expect(ShellEnvironment.set("DOCKER_HOST", "unix:///it's", shell: .powershell) == "$Env:DOCKER_HOST = 'unix:///it''s'")
        #expect(ShellEnvironment.unset("DOCKER_HOST", shell: .powershell) == "Remove-Item Env:\\DOCKER_HOST")
        #expect(ShellEnvironment.set("DOCKER_HOST", "unix:///a&b%c", shell: .cmd) == "SET DOCKER_HOST=unix:///a^&b%%c")
        #expect(ShellEnvironment.unset("DOCKER_HOST", shell: .cmd) == "SET DOCKER_HOST=")
        #expect(ShellEnvironment.usage(of: "machine env", shell: .cmd).hasPrefix("REM "))
        #expect(ShellEnvironment.usage(of: "machine env", shell: .powershell).contains("& machine env | Invoke-Expression"))
    }

    @Test func theShellIsFoundFromSHELL() {
        #expect(ShellEnvironment.Shell(path: "/bin/bash") == .bash)
        #expect(ShellEnvironment.Shell(path: "/usr/bin/fish") == .fish)
        #expect(ShellEnvironment.Shell(path: "/bin/csh") == .tcsh)
        #expect(ShellEnvironment.Shell(path: "/usr/bin/pwsh") == .powershell)
        #expect(ShellEnvironment.Shell(path: "/bin/dash") == .sh)
        #expect(ShellEnvironment.Shell(path: "/usr/bin/nushell") == nil)
    }
}
