import FoundationEssentials

/// What `machine env` prints: the commands that set (or unset) environment variables in the
/// user's shell, docker-machine style, each value quoted so that the shell reads it back as
/// one word whatever it holds (a socket path under a home with spaces or quotes).
public enum ShellEnvironment {
    public enum Shell: String, CaseIterable, Sendable {
        case sh, bash, zsh, fish, tcsh, powershell, cmd

        /// The shell named by a path such as $SHELL (csh counts as tcsh; pwsh as powershell).
        public init?(path: String) {
            let name = URL(fileURLWithPath: path).lastPathComponent
            switch name {
            case "csh": self = .tcsh
            case "pwsh", "powershell.exe", "pwsh.exe": self = .powershell
            case "cmd.exe": self = .cmd
            case "dash", "ash", "ksh", "mksh": self = .sh
            default: self.init(rawValue: name)
            }
        }
    }

    /// The line that sets `name` to `value`.
    public static func set(_ name: String, _ value: String, shell: Shell) -> String {
        switch shell {
        case .sh, .bash, .zsh: "export \(name)=\(posixQuote(value))"
        case .fish: "set -gx \(name) \(posixQuote(value));"
        case .tcsh: "setenv \(name) \(cshQuote(value));"
        case .powershell: "$Env:\(name) = \(powershellQuote(value))"
        case .cmd: "SET \(name)=\(cmdEscape(value))"
        }
    }

    /// The line that removes `name`.
    public static func unset(_ name: String, shell: Shell) -> String {
        switch shell {
        case .sh, .bash, .zsh: "unset \(name)"
        case .fish: "set -e \(name);"
        case .tcsh: "unsetenv \(name);"
        case .powershell: "Remove-Item Env:\\\(name)"
        case .cmd: "SET \(name)="
        }
    }

    /// The comment that says how to apply `command`'s output in this shell.
    public static func usage(of command: String, shell: Shell) -> String {
        switch shell {
        case .sh, .bash, .zsh: "# Run this command to configure your shell:\n# eval \"$(\(command))\""
        case .fish: "# Run this command to configure your shell:\n# \(command) | source"
        case .tcsh: "# Run this command to configure your shell:\n# eval `\(command)`"
        case .powershell: "# Run this command to configure your shell:\n# & \(command) | Invoke-Expression"
        case .cmd: "REM Run this command to configure your shell:\nREM @FOR /f \"tokens=*\" %i IN ('\(command)') DO @%i"
        }
    }

    /// Single quotes, a quote inside written as '\'' (sh, bash, zsh; fish reads it the same way).
    static func posixQuote(_ text: String) -> String {
        "'" + text.replacing("'", with: "'\\''") + "'"
    }

    /// Like sh, but tcsh expands history (!) even inside single quotes, and a newline needs a
    /// backslash.
    static func cshQuote(_ text: String) -> String {
        "'" + text.replacing("'", with: "'\\''").replacing("!", with: "\\!")
            .replacing("\n", with: "\\\n") + "'"
    }

    /// PowerShell's single-quoted string: nothing expands, a quote is doubled.
    static func powershellQuote(_ text: String) -> String {
        "'" + text.replacing("'", with: "''") + "'"
    }

    /// cmd's SET takes the rest of the line as is, but for its own operators, escaped with ^;
    /// % is doubled (the caret does not escape it).
    static func cmdEscape(_ text: String) -> String {
        var out = ""
        for ch in text {
            switch ch {
            case "^", "&", "|", "<", ">", "(", ")": out += "^\(ch)"
            case "%": out += "%%"
            default: out.append(ch)
            }
        }
        return out
    }
}
