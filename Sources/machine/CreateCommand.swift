import ArgumentParser
import Foundation
import MachineCore

extension Machine {
    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a machine (a libvirt domain with its own data disk and SSH key).",
            discussion: """
                The machine is defined when it first starts; create makes its folder under
                $MACHINE_HOME/machines/NAME: SSH key pair, data disk, seed and config.

                EXAMPLES:
                  machine create                       # the machine named "default"
                  machine create dev --cpus 4 --memory 4G --disk 40G
                  machine create old --iso ~/boot2docker.iso
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @Option(help: "Virtual CPUs.") var cpus = 2
        @Option(help: "Memory, e.g. 2G or 2048 (MiB).") var memory = "1G"
        @Option(help: "Data disk size (grows as used), e.g. 20G.") var disk = "20G"
        @Option(help: "Boot this ISO instead of the built image.") var iso: String?
        @Option(help: "Acceleration: auto (KVM when it really works, else TCG), kvm or tcg.") var accel = "auto"

        func validate() throws {
            guard (1...64).contains(cpus) else { throw ValidationError("--cpus must be between 1 and 64") }
            guard ["auto", "kvm", "tcg"].contains(accel) else { throw ValidationError("--accel must be auto, kvm or tcg") }
        }

        func run() throws {
            try perform { () throws(MachineError) in
                let memoryMiB = try Size.mebibytes(memory)
                let diskGiB = max(1, try Size.mebibytes(disk) / 1024)
                guard memoryMiB >= 256 else { throw MachineError("--memory must be at least 256M", exitCode: 64) }
                let isoPath = iso.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
                let config = MachineConfig(name: target.name, cpus: cpus, memoryMiB: memoryMiB, diskGiB: diskGiB,
                                           iso: isoPath, sshPort: try MachineStore.freeLoopbackPort(), accel: accel)
                try global.machines().create(config)
                print("created \(target.name); start it with `machine start\(target.name == MachineName.default ? "" : " " + target.name)`")
            }
        }
    }
}
