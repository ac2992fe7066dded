import FoundationEssentials

/// The Debian release a guest's programs and engine come from (`iso/build.sh --suite`): one
/// for both, since the engine runs on the image's C library. The kernel is bookworm's in each
/// (the guest's own module is built on the host; see `iso/build.sh --help`).
public enum DebianSuite {
    /// What a new machine runs when nothing chose: trixie (Docker Engine 26.1). Machines that
    /// ran before keep their suite on start (`forBoot`); `machine upgrade` moves them.
    public static let `default` = "trixie"
    /// Every suite the recipes build, the default first (scripts/lib/debian.sh's SUITES).
    public static let all = ["trixie", "bookworm"]
    /// Builds made before there was a choice (manifests and boot records without a suite).
    static let beforeChoice = "bookworm"

    /// The suite named on the command line.
    public static func parse(_ text: String) throws(MachineError) -> String {
        let name = text.trimmed().lowercased()
        guard all.contains(name) else {
            throw MachineError("unknown Debian suite \"\(text)\"", hint: "choose one of: \(all.joined(separator: ", "))", kind: .usage)
        }
        return name
    }

    /// The suite a boot uses: the machine's own choice (`--suite`), else the suite it ran last,
    /// else the default. A start never moves a machine's engine to another Debian release (a
    /// newer `machine` may change the default); `machine upgrade` does, with its rollback.
    static func forBoot(_ config: MachineConfig, lastBoot: BootRecord?) -> String {
        config.suite ?? lastBoot.map { $0.suite ?? beforeChoice } ?? `default`
    }

    /// Every suite with what it has, for help texts: "bookworm (Debian 12, ...) or trixie (...)".
    public static var choices: String {
        all.map { "\($0) (\(describe($0)))" }.joined(separator: " or ")
    }

    /// The Debian release and Docker Engine a suite's builds have.
    public static func describe(_ suite: String) -> String {
        switch suite {
        case "trixie": "Debian 13, Docker Engine 26.1"
        case "bookworm": "Debian 12, Docker Engine 20.10"
        default: suite
        }
    }
}
