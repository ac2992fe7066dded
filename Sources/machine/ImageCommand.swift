import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Image: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build or show the guest image and the engine bundle.",
            subcommands: [Build.self]
        )
    }
}

extension Machine.Image {
    struct Build: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build the guest image and the engine bundle from Debian packages (cached).",
            discussion: """
                The image (kernel, initramfs, bootable ISO) and the Docker Engine bundle are
                assembled from Debian packages fetched with apt-get download; nothing is
                installed on the host. Results are cached under $MACHINE_CACHE (default
                ~/.machine/cache), keyed by every input: a second build with the same recipe
                and mirror is instant. An interrupted build leaves the cache as it was.

                Packages come from one Debian release, --suite: trixie (Debian 13, Docker
                Engine 26.1; the default) or bookworm (Debian 12, Engine 20.10). Its package
                lists are fetched from the host's Debian mirror into the cache (apt/SUITE) on
                the first build and with --refresh; the host's own apt state is not touched.

                EXAMPLES:
                  machine image build
                  machine image build --refresh                 # what Debian has now
                  machine image build --suite bookworm --quiet
                  qemu-system-x86_64 -cdrom "$(machine image build --quiet | sed -n 's/^iso: //p')" -nographic
                """
        )

        @Flag(help: "No progress lines.")
        var quiet = false
        @Option(help: ArgumentHelp("The Debian release: \(DebianSuite.choices) (default: \(DebianSuite.default)).", valueName: "suite"))
        var suite: String?
        @Flag(help: "Fetch Debian's package lists again first, to build from what Debian has now.")
        var refresh = false

        func validate() throws {
            _ = try MachineShapeOptions.suite(suite)
        }

        func run() throws {
            do {
                let suite = (try? MachineShapeOptions.suite(suite)) ?? DebianSuite.default
                let builder = Builder(recipes: try Recipes.locate(), paths: Paths())
                let image = try builder.image(suite: suite, refresh: refresh, quiet: quiet)
                let engine = try builder.engineBundle(suite: suite, quiet: quiet)
                let size = { (name: String, artefacts: [String: ArtefactRecord]) -> String in
                    let bytes = artefacts[name]?.size ?? 0
                    return String(cFormat: "%.1f MB", Double(bytes) / 1_000_000)
                }
                print("suite:  \(suite) (\(DebianSuite.describe(suite)))")
                print("image:  \(image.folder.path) (kernel \(image.manifest.kernel))")
                print("iso:    \(image.iso.path) (\(size("machine.iso", image.manifest.artefacts)))")
                print("engine: \(engine.archive.path) (Docker \(engine.manifest.docker), \(size("engine.tar.xz", engine.manifest.artefacts)))")
            } catch {
                throw fail(error)
            }
        }
    }
}
