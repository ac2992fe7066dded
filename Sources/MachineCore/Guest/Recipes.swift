import FoundationEssentials

/// The guest-side files that ship with `machine`: the image recipe (`iso/`), the engine
/// recipe and guest scripts (`provisioning/`) and their shared helper (`scripts/lib`).
/// Found, in order, at `$MACHINE_RECIPES`, next to an installed binary
/// (`PREFIX/share/machine`), or in the source tree this binary was built from.
public struct Recipes: Sendable {
    public let root: URL

    public init(root: URL) {
        self.root = root
    }

    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) throws(MachineError) -> Recipes {
        var candidates: [URL] = []
        if let explicit = environment["MACHINE_RECIPES"] {
            candidates.append(URL(fileURLWithPath: explicit))
        }
        // The running binary itself (argv[0] is only "machine" when it was found on PATH).
        candidates.append(AgentProcess.besideExecutable("../share/machine"))
        // #filePath is Sources/MachineCore/Guest/Recipes.swift in the checkout that built us.
        candidates.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent())
        for candidate in candidates {
            let recipes = Recipes(root: candidate)
            if FileManager.default.isExecutableFile(atPath: recipes.imageBuildScript.path) {
                return recipes
            }
        }
        throw MachineError(
            "cannot find the guest image recipe (iso/build.sh); looked in "
                + candidates.map(\.path).joined(separator: ", "),
            hint: "set MACHINE_RECIPES to the folder that holds iso/ and provisioning/")
    }

    public var imageBuildScript: URL { root.appendingPathComponent("iso/build.sh") }
    public var engineBuildScript: URL { root.appendingPathComponent("provisioning/build-bundle.sh") }
}
