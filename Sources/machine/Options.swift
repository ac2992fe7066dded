import ArgumentParser
import Foundation
import MachineCore

/// Flags every machine command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("connect"), help: ArgumentHelp(
        "libvirt URI (default: $MACHINE_LIBVIRT_URI, else qemu:///system for root, qemu:///session for others).",
        valueName: "uri"))
    var uri: String?

    func machines() throws(MachineError) -> Machines {
        let machines = try Machines(paths: Paths(), uri: Hypervisor.defaultURI(flag: uri))
        machines.progress = { line in FileHandleStream.standardError.write(line + "\n") }
        return machines
    }
}

/// The machine a command acts on: NAME, or `default`.
struct NameArgument: ParsableArguments {
    @Argument(help: "The machine's name (default: default).")
    var name: String = MachineName.default

    func validate() throws {
        do {
            try MachineName.validate(name)
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// Runs a command body, turning a MachineError into its message, hint and exit status.
func perform(_ body: () throws(MachineError) -> Void) throws {
    do {
        try body()
    } catch {
        throw fail(error)
    }
}
