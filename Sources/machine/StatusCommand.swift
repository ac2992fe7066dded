import ArgumentParser
import FoundationEssentials
import HostOS
import MachineCore

extension Machine {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a machine's state: running, sleeping, suspended, stopped, paused, crashed, ...",
            discussion: """
                `sleeping`: idle for its --idle-sleep time, its CPUs stopped until the next
                docker command or connection to a published port wakes it (`machine set
                --idle-sleep` changes the time).

                A state nobody asked for comes with libvirt's reason, and after a crash with
                QEMU's last error line, e.g.:
                  paused (unknown)
                  QEMU: KVM internal error. Suberror: 1 (emulation failure)
                A running machine whose data disk is 90% full or more gets a warning
                with the fixes (on stderr).

                EXAMPLES:
                  machine status
                  machine status dev
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument

        func run() throws {
            try perform { () throws(MachineError) in
                let info = try global.machines(for: target.name).info(target.name)
                print(info.stateLine)
                if let qemuError = info.qemuError { print("QEMU: \(qemuError)") }
                for warning in info.warnings { StandardStream.error.write(warning + "\n") }
            }
        }
    }
}
