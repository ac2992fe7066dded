import FoundationEssentials

/// Programs of other platforms (linux/arm64 and the rest of `GuestContract.emulatedPlatforms`),
/// which the guest runs through QEMU's user-mode emulators registered with binfmt_misc
/// (provisioning/guest/platforms). What a machine emulates is its config's `platforms`: nil for
/// every one, an empty list for none (`--platforms`).
public enum EmulatedPlatforms {
    /// The platform the machine runs natively.
    public static let native = "linux/amd64"

    /// A `--platforms` a user gave: `platforms` nil for all, empty for none (a struct, so that
    /// "not given" and "all" are not two layers of nil).
    public struct Choice: Sendable, Equatable {
        public let platforms: [String]?
        public init(_ text: String) throws(MachineError) { platforms = try EmulatedPlatforms.parse(text) }
    }

    /// `--platforms`: "all", "none", or platforms separated by commas, each with or without
    /// "linux/" (arm64, linux/riscv64). Nil means all.
    public static func parse(_ text: String) throws(MachineError) -> [String]? {
        let words = text.split(separator: ",").map { $0.trimmed().lowercased() }.filter { !$0.isEmpty }
        if words == ["all"] { return nil }
        if words == ["none"] { return [] }
        var chosen: [String] = []
        for word in words {
            let platform = word.hasPrefix("linux/") ? word : "linux/" + word
            guard GuestContract.emulatedPlatforms.contains(platform) else {
                throw MachineError("--platforms: no emulator for \"\(word)\"",
                                   hint: "give all, none, or a comma-separated list of \(GuestContract.emulatedPlatforms.joined(separator: ", "));"
                                       + " \(native) runs natively", kind: .usage)
            }
            if !chosen.contains(platform) { chosen.append(platform) }
        }
        guard !chosen.isEmpty else {
            throw MachineError("--platforms needs a value", hint: "give all, none, or platforms such as linux/arm64,linux/riscv64", kind: .usage)
        }
        return chosen
    }

    /// The setting as users write it and the seed carries it: "all", "none" or the platforms.
    public static func describe(_ platforms: [String]?) -> String {
        guard let platforms else { return "all" }
        return platforms.isEmpty ? "none" : platforms.joined(separator: ",")
    }

    /// The seed's `platforms` file: "all", "none", or one platform a line.
    static func seedFile(_ platforms: [String]?) -> Data {
        Data((platforms.map { $0.isEmpty ? "none\n" : $0.map { $0 + "\n" }.joined() } ?? "all\n").utf8)
    }
}

/// What `machine inspect` says of the platforms a machine runs: its setting, and while it runs,
/// what the guest answered when each emulated platform's test program was run.
public struct PlatformsInfo: Codable, Sendable, Equatable {
    public let native: String
    /// "all", "none" or the platforms chosen (`--platforms`).
    public let setting: String
    /// "on", "off", "unavailable: WHY", or "not checked: WHY" (the machine does not run, the
    /// guest did not answer).
    public var emulation: String
    /// Each emulated platform: "works", or "failing: WHY" when its handler is missing or its
    /// test program does not run.
    public var emulated: [String: String]

    public init(setting: [String]?, emulation: String, emulated: [String: String] = [:]) {
        native = EmulatedPlatforms.native
        self.setting = EmulatedPlatforms.describe(setting)
        self.emulation = emulation
        self.emulated = emulated
    }

    /// Reads what `platforms check` printed (the guest's bytes, so anything may come): the
    /// first line "emulation<TAB>on|off|unavailable[<TAB>WHY]", then "PLATFORM<TAB>works" or
    /// "PLATFORM<TAB>failing<TAB>WHY". Lines of platforms machine does not know, and anything
    /// malformed, are left out; text is cut to a line's worth of printable characters.
    public mutating func read(check output: String) {
        let lines = output.split(separator: "\n", omittingEmptySubsequences: true).prefix(64)
        guard let first = lines.first.map(Self.fields), first.first == GuestContract.platformsEmulationWord,
              first.count >= 2, GuestContract.platformsEmulationStates.contains(first[1]) else {
            emulation = "not checked: the guest's answer was not understood"
            return
        }
        emulation = first[1] + (first.count > 2 ? ": " + first[2] : "")
        for line in lines.dropFirst() {
            let fields = Self.fields(line)
            guard fields.count >= 2, GuestContract.emulatedPlatforms.contains(fields[0]) else { continue }
            switch fields[1] {
            case GuestContract.platformWorks: emulated[fields[0]] = GuestContract.platformWorks
            case GuestContract.platformFailing: emulated[fields[0]] = GuestContract.platformFailing + ": " + (fields.count > 2 ? fields[2] : "no reason given")
            default: continue
            }
        }
    }

    private static func fields(_ line: Substring) -> [String] {
        line.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false).map {
            String(String.UnicodeScalarView($0.unicodeScalars.filter { (0x20..<0x7f).contains($0.value) }.prefix(200)))
        }
    }
}

/// What became of a new `--platforms`.
public enum PlatformsChange: Equatable, Sendable {
    case unchanged
    /// The running guest registered the handlers at once; what it said.
    case applied(String)
    /// Kept in the config for the next boot: the machine does not run, or (the reason)
    /// the guest could not apply it now.
    case nextBoot(String?)
}

/// The emulated platforms of a running guest, over SSH: registered at once (binfmt_misc
/// handlers need no boot) and checked by running each one's test program.
struct GuestPlatforms {
    let guest: GuestSSH

    /// Has the guest register `platforms` (nil all, empty none) now, as its next boots will
    /// from the seed.
    func register(_ platforms: [String]?) -> PlatformsChange {
        let seedFile = String(decoding: EmulatedPlatforms.seedFile(platforms), as: UTF8.self)
        let command = "printf %s \(ShellEnvironment.posixQuote(seedFile)) >\(GuestContract.seedFolder)/\(GuestContract.platformsSeedFile)"
            + " && \(GuestContract.platformsRegisterCommand)"
        let answer: (status: Int32, output: Data)
        do {
            answer = try run(command)
        } catch {
            return .nextBoot("the guest did not answer: \(error.message)")
        }
        guard answer.status == 0 else {
            return .nextBoot(answer.status == 127 ? "its engine has no emulators yet" : "the guest's `platforms register` exited with \(answer.status)")
        }
        let said = String(decoding: answer.output, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        return .applied(String(String.UnicodeScalarView(said.unicodeScalars.filter { (0x20..<0x7f).contains($0.value) }.prefix(300))))
    }

    /// `platforms check` in the guest: what `inspect` reports of the platforms `setting` asks for.
    func check(setting: [String]?) -> PlatformsInfo {
        var info = PlatformsInfo(setting: setting, emulation: "")
        let answer: (status: Int32, output: Data)
        do {
            answer = try run(GuestContract.platformsCheckCommand)
        } catch {
            info.emulation = "not checked: \(error.message)"
            return info
        }
        switch answer.status {
        case 0: info.read(check: String(decoding: answer.output, as: UTF8.self))
        // The shell's "not found": an engine from before emulation has no `platforms` script.
        case 127: info.emulation = "unavailable: the machine's engine has no emulators (`machine upgrade\(MachineName.commandSuffix(guest.name))` brings them)"
        default: info.emulation = "not checked: `\(GuestContract.platformsCheckCommand)` in the guest exited with \(answer.status)"
        }
        return info
    }

    /// One short command in the guest over a session of its own (an answer over 64 KiB is an error).
    private func run(_ command: String) throws(MachineError) -> (status: Int32, output: Data) {
        let session = try guest.connect()
        do {
            let answer = try session.run(command, limit: 64 << 10)
            return (answer.status, answer.output)
        } catch {
            throw GuestSSH.explain(error, name: guest.name, files: guest.files)
        }
    }
}
