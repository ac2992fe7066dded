import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a machine (a libvirt domain with its own data disk and SSH key).",
            discussion: """
                The machine is defined when it first starts; create makes its folder under
                $MACHINE_HOME/machines/NAME: SSH key pair, data disk, seed and config.
                `machine up` creates the machine too when it does not exist.

                EXAMPLES:
                  machine create                       # the machine named "default"
                  machine create dev --cpus 4 --memory 4G --disk 40G
                  machine create old --iso ~/boot2docker.iso
                  machine create work --engine-env HTTP_PROXY=http://proxy:3128 --insecure-registry registry.local:5000
                  machine create src --mount ~/src --mount ~/datasets:/data:ro --mount-type 9p

                SHARES:
                  By default your home folder is shared read-write at the same path, so
                  `docker run -v "$PWD":/src ...` works from anywhere under it. Files containers
                  write there belong to you. machine's own folder ($MACHINE_HOME) is hidden
                  from the guest.
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @OptionGroup var shape: MachineShapeOptions
        @OptionGroup var engine: EngineOptions
        @OptionGroup var shares: ShareOptions

        func run() throws {
            try perform { () throws(MachineError) in
                let machines = try global.machines(for: target.name)
                var config = try shape.shape().newConfig(name: target.name, engine: try engine.settings(progress: machines.progress), sharesHome: machines.remote == nil)
                try shares.apply(to: &config, home: Paths().home.path)
                try machines.create(config)
                print("created \(target.name); start it with `machine up\(MachineName.commandSuffix(target.name))`")
            }
        }
    }
}
