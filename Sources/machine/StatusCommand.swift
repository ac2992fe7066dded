import ArgumentParser
import Foundation
import MachineCore

extension Machine {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a machine's state: running, stopped, paused, crashed, ...",
            discussion: """
                A state nobody asked for comes with libvirt's reason, and after a crash with
                QEMU's last error line, e.g.:
                  paused (unknown)
                  QEMU: KVM internal error. Suberror: 1 (emulation failure)

                EXAMPLES:
                  machine status
                  machine status dev
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument

        func run() throws {
            try perform { () throws(MachineError) in
                let info = try global.machines().info(target.name)
                print(info.stateLine)
                if let qemuError = info.qemuError { print("QEMU: \(qemuError)") }
            }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print everything about a machine as JSON: config, state, paths, ports.",
            discussion: "EXAMPLES:\n  machine inspect\n  machine inspect dev | python3 -m json.tool")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument

        func run() throws {
            try perform { () throws(MachineError) in
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                encoder.dateEncodingStrategy = .iso8601
                // The error of info() must reach the user: inside `try?` it printed an empty line and exit 0.
                let info = try global.machines().info(target.name)
                let data = (try? encoder.encode(info)) ?? Data()
                print(String(decoding: data, as: UTF8.self))
            }
        }
    }

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
                let info = try global.machines().info(target.name)
                print("\(info.ssh.host):\(info.ssh.port)")
            }
        }
    }
}
