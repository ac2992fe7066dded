import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Upgrade: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring a machine's Debian packages and engine up to date, going back if the new engine fails.",
            discussion: """
                Fetches Debian's package lists (`--no-refresh` skips it), builds the guest
                image and the engine bundle from the packages Debian has now, shows the old
                and new versions, then restarts the machine onto them. The builds are of
                the Debian release the machine chose, else of the default, trixie (Docker
                Engine 26.1): a plain upgrade moves a machine made before trixie was the
                default from Engine 20.10 to 26.1. --suite moves it to the one named (kept from
                then on): trixie or bookworm (Engine 20.10). The data disk stays as it is:
                images, containers, volumes and restart
                policies carry over. When the new engine does not answer within
                --engine-timeout, the machine is booted again on the image and engine it
                ran before and kept on them (`machine inspect` shows "held") until an
                upgrade succeeds. The machine is running afterwards, unless it was up to
                date: then it is left as it is.

                EXAMPLES:
                  machine upgrade
                  machine upgrade dev --no-refresh
                  machine upgrade dev --suite bookworm   # back to Debian 12 and Engine 20.10
                  machine inspect dev | python3 -c 'import json,sys; print(json.load(sys.stdin)["builds"])'
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @OptionGroup var configTrust: ConfigTrustOptions
        @Flag(inversion: .prefixedNo, help: "Fetch Debian's package lists first (into machine's cache; the host's apt is not touched).")
        var refresh = true
        @Option(help: ArgumentHelp("Move the machine to this Debian release: \(DebianSuite.choices) (default: the one it has chosen, else \(DebianSuite.default)).", valueName: "suite"))
        var suite: String?
        @Option(help: "Seconds to wait for the new engine before going back to the old one.")
        var engineTimeout: Double = 180

        func validate() throws {
            guard engineTimeout > 0 else { throw ValidationError("--engine-timeout must be more than 0") }
            _ = try MachineShapeOptions.suite(suite)
        }

        func run() throws {
            try perform { () throws(MachineError) in
                let machines = try global.machines(for: target.name)
                configTrust.apply(to: machines)
                let name = target.name
                // The machine's lock is held from here until the upgrade goes (the end of run).
                let upgrade = try machines.beginUpgrade(name, refreshPackageLists: refresh, suite: try? MachineShapeOptions.suite(suite))
                let plan = upgrade.plan
                if plan.upToDate {
                    // The latest builds are again the ones it went back to: nothing to hold.
                    try upgrade.releaseHold()
                    print("\(name) is up to date: \(Self.describe(plan.new))")
                    return
                }
                if let current = plan.current {
                    print("\(name):")
                    for line in Self.changes(from: current, to: plan.new) { print("  " + line) }
                    if plan.packageChanges.isEmpty {
                        print("the same Debian packages, built by another recipe (machine itself was upgraded)")
                    } else {
                        print("Debian packages that change:")
                        for change in plan.packageChanges { print("  " + change) }
                    }
                } else {
                    print("\(name) will run \(Self.describe(plan.new))")
                }
                let started = try upgrade.apply(engineTimeout: engineTimeout)
                print("\(name) upgraded: engine \(plan.new.engine.manifest.version) answers at \(DockerContext.dockerHost(socket: URL(fileURLWithPath: started.dockerSocket)))")
            }
        }

        /// One line for the image and one for the engine: old -> new, or unchanged.
        static func changes(from old: Machines.Builds, to new: Machines.Builds) -> [String] {
            func image(_ image: GuestImage) -> String { "\(image.folder.lastPathComponent) (kernel \(image.manifest.kernel))" }
            func line(_ what: String, _ was: String?, _ now: String?) -> String? {
                guard let now else { return nil }
                guard let was, was != now else { return "\(what) \(now), unchanged" }
                return "\(what) \(was) -> \(now)"
            }
            return [line("image ", old.image.map(image), new.image.map(image)),
                    line("engine", engineText(old.engine), engineText(new.engine))].compactMap { $0 }
        }

        static func engineText(_ engine: EngineBundle) -> String {
            "Docker \(engine.manifest.docker) (Debian \(engine.suite), bundle \(engine.folder.lastPathComponent))"
        }

        static func describe(_ builds: Machines.Builds) -> String {
            let engine = "engine " + engineText(builds.engine)
            guard let image = builds.image else { return engine }
            return "image with kernel \(image.manifest.kernel) (\(image.folder.lastPathComponent)), \(engine)"
        }
    }
}
