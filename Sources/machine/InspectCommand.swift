import ArgumentParser
import Foundation
import MachineCore

extension Machine {
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
                let info = try global.machines(for: target.name).info(target.name)
                let data = (try? encoder.encode(info)) ?? Data()
                print(String(decoding: data, as: UTF8.self))
            }
        }
    }
}
