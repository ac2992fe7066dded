import Foundation
import MachineCore
import Testing

/// Which cached build starting a machine uses, against a fake recipe whose build script records
/// that it ran.
@Suite struct BuilderTests {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("builder-\(UUID().uuidString.prefix(8))")
    var cache: URL { root.appendingPathComponent("cache") }
    var builder: Builder { builder(prebuilt: nil) }

    func builder(prebuilt: Prebuilt?) -> Builder {
        Builder(recipes: Recipes(root: root.appendingPathComponent("recipes")),
                paths: Paths(environment: ["MACHINE_HOME": root.path, "MACHINE_CACHE": cache.path]), prebuilt: prebuilt)
    }

    /// An installed image (install.sh's prebuilt/images/latest-trixie) built from `recipe`.
    func installed(recipe: String) throws -> Prebuilt {
        let prebuilt = Prebuilt(root: root.appendingPathComponent("lib/machine/prebuilt"))
        let folder = prebuilt.images.appendingPathComponent("shipped")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try manifest(recipe: recipe).write(to: folder.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: prebuilt.images.appendingPathComponent("latest-trixie").path, withDestinationPath: "shipped")
        return prebuilt
    }

    func manifest(recipe: String?) -> String {
        let field = recipe.map { "\"recipe\": \"\($0)\", " } ?? ""
        return "{\"key\": \"k\", \(field)\"kernel\": \"6.1\", \"packages\": [], \"artefacts\": {}}"
    }

    /// A recipe whose current hash is `current`; building makes images/new and leaves a mark.
    func setUp(current: String, cached: String?) throws {
        let iso = root.appendingPathComponent("recipes/iso")
        try FileManager.default.createDirectory(at: iso, withIntermediateDirectories: true)
        let script = iso.appendingPathComponent("build.sh")
        try """
            #!/bin/bash
            [ "$1" = --recipe-hash ] && { echo \(current); exit 0; }
            while [ $# -gt 0 ]; do case $1 in --cache) cache=$2 ;; --suite) suite=$2 ;; esac; shift; done
            mkdir -p "$cache/images/new" && echo "$suite" >"$cache/built"
            echo '\(manifest(recipe: current))' >"$cache/images/new/manifest.json"
            echo "$cache/images/new"
            """.write(to: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        let old = cache.appendingPathComponent("images/old")
        try FileManager.default.createDirectory(at: old, withIntermediateDirectories: true)
        try manifest(recipe: cached).write(to: old.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: cache.appendingPathComponent("images/latest-trixie").path, withDestinationPath: "old")
    }

    var built: Bool { FileManager.default.fileExists(atPath: cache.appendingPathComponent("built").path) }
    /// The suite the recipe was asked to build, if it ran.
    var builtSuite: String? {
        (try? String(contentsOf: cache.appendingPathComponent("built"), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Each suite has a latest of its own: bookworm's is never booted for trixie, nor the other way.
    @Test func theLatestImageOfAnotherSuiteIsNotUsed() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        try setUp(current: "00000000000000aa", cached: "00000000000000aa")
        let image = try builder.latestImage(suite: "bookworm", quiet: true)
        #expect(image.folder.lastPathComponent == "new" && builtSuite == "bookworm")
        #expect(try builder.latestImage(suite: "trixie", quiet: true).folder.lastPathComponent == "old")
    }

    @Test func theLatestImageIsUsedWhileItsRecipeIsTheCurrentOne() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        try setUp(current: "00000000000000aa", cached: "00000000000000aa")
        let image = try builder.latestImage(suite: "trixie", quiet: true)
        #expect(image.folder.lastPathComponent == "old" && !built)
    }

    @Test(arguments: ["00000000000000bb", nil] as [String?])
    func anImageFromAnotherOrAnUnknownRecipeIsBuiltAgain(cached: String?) throws {
        defer { try? FileManager.default.removeItem(at: root) }
        try setUp(current: "00000000000000aa", cached: cached)
        let image = try builder.latestImage(suite: "trixie", quiet: true)
        #expect(image.folder.lastPathComponent == "new" && builtSuite == "trixie")
        #expect(image.manifest.recipe == "00000000000000aa")
    }

    /// A first `up` boots the installed image when the account has no current one of its own.
    @Test(arguments: ["00000000000000bb", nil] as [String?])
    func anInstalledImageOfTheCurrentRecipeIsBootedAndNothingIsBuilt(cached: String?) throws {
        defer { try? FileManager.default.removeItem(at: root) }
        try setUp(current: "00000000000000aa", cached: cached)
        let image = try builder(prebuilt: try installed(recipe: "00000000000000aa")).latestImage(suite: "trixie", quiet: true)
        #expect(image.folder.lastPathComponent == "shipped" && !built)
    }

    @Test func theAccountsOwnCurrentImageComesBeforeTheInstalledOne() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        try setUp(current: "00000000000000aa", cached: "00000000000000aa")
        let image = try builder(prebuilt: try installed(recipe: "00000000000000aa")).latestImage(suite: "trixie", quiet: true)
        #expect(image.folder.lastPathComponent == "old" && !built)
    }

    /// An image installed by an older package is never booted by a newer binary.
    @Test func anInstalledImageOfAnotherRecipeIsNotBooted() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        try setUp(current: "00000000000000aa", cached: "00000000000000bb")
        let image = try builder(prebuilt: try installed(recipe: "00000000000000bb")).latestImage(suite: "trixie", quiet: true)
        #expect(image.folder.lastPathComponent == "new" && built)
    }
}

@Suite struct RecipesTests {
    @Test func aBinaryBuiltFromThisCheckoutFindsItsRecipes() throws {
        // No MACHINE_RECIPES and no installed share/machine: the source tree that built us.
        let recipes = try Recipes.locate(environment: [:])
        let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        #expect(recipes.root.standardizedFileURL.path == checkout.standardizedFileURL.path)
        #expect(FileManager.default.isExecutableFile(atPath: recipes.engineBuildScript.path))
    }
}

@Suite struct DebianSuiteTests {
    @Test func aSuiteIsNamedAsDebianNamesIt() throws {
        #expect(try DebianSuite.parse("Trixie") == "trixie")
        #expect(try DebianSuite.parse(" bookworm") == "bookworm")
        for bad in ["sid", "", "trixie;rm", "bullseye"] {
            let error = #expect(throws: MachineError.self) { try DebianSuite.parse(bad) }
            #expect(error?.kind == .usage && error?.hint?.contains(DebianSuite.all.joined(separator: ", ")) == true)
        }
    }

    @Test func theDefaultIsTheFirstTheRecipesBuild() throws {
        // scripts/lib/debian.sh's SUITES lists the same, the default first.
        let recipes = try Recipes.locate(environment: [:])
        let shell = try String(contentsOf: recipes.root.appendingPathComponent("scripts/lib/debian.sh"), encoding: .utf8)
        #expect(shell.contains("SUITES=(\(DebianSuite.all.joined(separator: " ")))"))
        #expect(DebianSuite.all.first == DebianSuite.default)
    }
}
