import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a machine's CPUs, memory, data disk size, host access (at its next boot), emulated platforms or idle sleep (at once).",
            discussion: """
                The change is kept in the machine's config and applied when it
                next boots: a running machine keeps its shape until `machine
                restart`. A data disk only grows; the guest grows its filesystem
                to fill it, keeping what is on it. `machine up` with the same
                options does the same and starts the machine. --idle-sleep
                and --platforms apply at once, to a running machine too.

                EXAMPLES:
                  machine set --cpus 4 --memory 4G && machine restart
                  machine set dev --disk 60G
                  machine set --host-access off && machine restart   # containers cannot reach this host
                  machine set --idle-sleep 15m                         # or off: never sleep
                  machine set --platforms none                         # no emulation of other platforms
                  machine set --platforms linux/arm64,linux/arm/v7     # only these
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @Option(help: "Virtual CPUs.") var cpus: Int?
        @Option(help: "Memory, e.g. 2G or 2048 (MiB).") var memory: String?
        @Option(help: "Data disk size, e.g. 40G; it only grows.") var disk: String?
        @Option(help: "Acceleration: auto, kvm or tcg.") var accel: String?
        @Option(help: ArgumentHelp("Whether containers may reach this host (host.docker.internal, its DNS).", valueName: "on|off"))
        var hostAccess: String?
        @Option(help: ArgumentHelp("Sleep after this long without a docker client or a connection to a published port (30s, 15m, 1h), or off.", valueName: "time"))
        var idleSleep: String?
        @Option(help: ArgumentHelp("Other platforms run through emulation: all, none, or a list such as linux/arm64,linux/riscv64.", valueName: "list"))
        var platforms: String?

        func validate() throws {
            if cpus == nil && memory == nil && disk == nil && accel == nil && hostAccess == nil && idleSleep == nil && platforms == nil {
                throw ValidationError("nothing to change: give --cpus, --memory, --disk, --accel, --host-access, --platforms or --idle-sleep")
            }
            _ = try MachineShapeOptions.platforms(platforms)
            _ = try MachineShapeOptions.onOff(hostAccess, flag: "--host-access")
            _ = try MachineShapeOptions.idleSeconds(idleSleep)
            if let cpus, !(1...64).contains(cpus) { throw ValidationError("--cpus must be between 1 and 64") }
            if let accel, !["auto", "kvm", "tcg"].contains(accel) { throw ValidationError("--accel must be auto, kvm or tcg") }
        }

        func run() throws {
            try perform { () throws(MachineError) in
                let shape = MachineShape(cpus: cpus, memoryMiB: try MachineShapeOptions.mebibytes(memory: memory),
                                         diskGiB: try MachineShapeOptions.gibibytes(disk: disk), accel: accel)
                let machines = try global.machines(for: target.name)
                let name = target.name
                let before = try machines.config(name)
                let shapeChanged = try machines.updateShape(name, accel: shape.accel, cpus: shape.cpus, memoryMiB: shape.memoryMiB, diskGiB: shape.diskGiB)
                var bootChanged = false
                if let on = (try? MachineShapeOptions.onOff(hostAccess, flag: "--host-access")) ?? nil {
                    bootChanged = try machines.updateHostAccess(name, on)
                }
                // Applied to a running guest at once: emulators need no boot.
                var platformsChanged = false
                if let choice = (try? MachineShapeOptions.platforms(platforms)) ?? nil {
                    let change = "\(name): platforms \(EmulatedPlatforms.describe(before.platforms)) -> \(EmulatedPlatforms.describe(choice.platforms))"
                    switch try machines.updatePlatforms(name, choice.platforms) {
                    case .unchanged: break
                    case .applied(let said):
                        platformsChanged = true
                        print("\(change); applied now: \(said)")
                    case .nextBoot(let why):
                        platformsChanged = true
                        print("\(change); applied when it next boots" + (why.map { " (\($0))" } ?? ""))
                    }
                }
                var idleChanged = false
                if let seconds = (try? MachineShapeOptions.idleSeconds(idleSleep)) ?? nil {
                    idleChanged = try machines.updateIdleSleep(name, seconds)
                    if idleChanged {
                        print("\(name): idle sleep \(IdleSleep.describe(before.idleSleepSeconds)) -> \(IdleSleep.describe(seconds)); applied now")
                    }
                }
                guard shapeChanged || bootChanged else {
                    if !idleChanged && !platformsChanged { print("\(name) already has that shape") }
                    return
                }
                let after = try machines.config(name)
                var changes: [String] = []
                if before.cpus != after.cpus { changes.append("CPUs \(before.cpus) -> \(after.cpus)") }
                if before.memoryMiB != after.memoryMiB { changes.append("memory \(before.memoryMiB) -> \(after.memoryMiB) MiB") }
                if before.diskGiB != after.diskGiB { changes.append("data disk \(before.diskGiB) -> \(after.diskGiB) GiB") }
                if before.accel != after.accel { changes.append("acceleration \(before.accel) -> \(after.accel)") }
                if before.hostAccess != after.hostAccess { changes.append("host access \(after.hostAccess ? "off -> on" : "on -> off")") }
                let when = try machines.info(name).state == "stopped"
                    ? "at its next start (`machine start\(MachineName.commandSuffix(name))`)"
                    : "at its next boot: `machine restart\(MachineName.commandSuffix(name))`"
                print("\(name): \(changes.joined(separator: ", ")); applied \(when)")
            }
        }
    }
}
