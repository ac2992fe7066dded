import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Ip: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print how the host reaches a machine: 127.0.0.1 and its SSH port.",
            discussion: """
                The machine sits behind QEMU's user-mode network; its only opening on the host
                is SSH on 127.0.0.1.

                EXAMPLES:
                  machine ip                 # 127.0.0.1:40022
                  ssh -p "$(machine ip | cut -d: -f2)" root@127.0.0.1
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument

        func run() throws {
            try perform { () throws(MachineError) in
                let info = try global.machines(for: target.name).info(target.name)
                print("\(info.ssh.host):\(info.ssh.port)")
            }
        }
    }
}
