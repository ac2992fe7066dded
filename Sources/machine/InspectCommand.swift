import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print everything about a machine as JSON: config, state, paths, ports, platforms.",
            discussion: "While the machine runs, \"platforms\" says which platforms' programs it runs through emulation, each checked by running a test program of that platform.\n\nEXAMPLES:\n  machine inspect\n  machine inspect dev | python3 -m json.tool")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument

        func run() throws {
            try perform { () throws(MachineError) in
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                encoder.dateEncodingStrategy = .iso8601
                // The error of info() must reach the user: inside `try?` it printed an empty line and exit 0.
                let machines = try global.machines(for: target.name)
                var info = try machines.info(target.name)
                info.platforms = machines.checkPlatforms(target.name, state: info.state)
                let data = (try? encoder.encode(info)) ?? Data()
                print(String(decoding: data, as: UTF8.self))
            }
        }
    }
}
