import ArgumentParser
import Foundation
import MachineCore

extension Machine {
    struct Logs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a machine's serial console (its latest boot).",
            discussion: "EXAMPLES:\n  machine logs\n  machine logs -f dev")

        @OptionGroup var target: NameArgument
        @Flag(name: [.short, .long], help: "Keep printing what the console writes.") var follow = false

        func run() throws {
            try perform { () throws(MachineError) in
                let store = MachineStore(paths: Paths())
                _ = try store.config(target.name)
                let path = store.files(target.name).consoleLog.path
                var offset: UInt64 = 0
                repeat {
                    if let handle = FileHandle(forReadingAtPath: path) {
                        let size = handle.seekToEndOfFile()
                        if size < offset { offset = 0 }  // a new boot truncated the log
                        handle.seek(toFileOffset: offset)
                        let data = handle.readDataToEndOfFile()
                        offset += UInt64(data.count)
                        FileHandle.standardOutput.write(data)
                        handle.closeFile()
                    } else if !follow {
                        throw MachineError("\(target.name) has no console log yet", hint: "start it with `machine start \(target.name)`")
                    }
                    if follow { usleep(200_000) }
                } while follow
            }
        }
    }
}
