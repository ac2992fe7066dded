import ArgumentParser
import FoundationEssentials
import HostOS
import Glibc  // `logs --follow` reads the console log by offset as QEMU appends to it
import MachineCore

extension Machine {
    struct Logs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a machine's serial console (its latest boot), or QEMU's own log.",
            discussion: """
                When the console is empty or the machine crashed, stopped its CPUs or failed
                to start, QEMU's log of its latest run (kept by libvirt) follows the console:
                that is where QEMU says why, e.g. "KVM internal error".

                EXAMPLES:
                  machine logs
                  machine logs -f dev
                  machine logs --qemu            # QEMU's log of the latest run only
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @Flag(name: [.short, .long], help: "Keep printing what the console writes.") var follow = false
        @Flag(help: "Print QEMU's log of the machine's latest run (libvirt keeps it) instead of the console.") var qemu = false

        func validate() throws {
            if follow && qemu { throw ValidationError("--follow and --qemu cannot be given together") }
        }

        func run() throws {
            try perform { () throws(MachineError) in
                // The console needs no libvirt: a machine whose daemon is down still has its log.
                let store = MachineStore(paths: Paths())
                _ = try store.config(target.name)
                let path = store.files(target.name).consoleLog.path
                let info: Machines.Info?
                do throws(MachineError) {
                    info = try global.machines(for: target.name).info(target.name)
                } catch {
                    if qemu { throw error }
                    info = nil
                }
                if qemu, let info {
                    try printQEMULog(info, always: true)
                    return
                }
                let console = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
                if !follow {
                    if console.isEmpty && info == nil {
                        throw MachineError("\(target.name) has no console log yet", hint: "start it with `machine start \(target.name)`")
                    }
                    StandardStream.output.write(console)
                    if let info, console.isEmpty || info.qemuError != nil {
                        try printQEMULog(info, always: console.isEmpty)
                    }
                    return
                }
                var offset = 0
                var buffer = [UInt8](repeating: 0, count: 65_536)
                while true {
                    let fd = open(path, O_RDONLY | O_CLOEXEC)
                    if fd >= 0 {
                        if lseek(fd, 0, SEEK_END) < offset { offset = 0 }  // a new boot truncated the log
                        while true {
                            let count = pread(fd, &buffer, buffer.count, off_t(offset))
                            guard count > 0 else { break }
                            StandardStream.output.write(Data(buffer[0..<count]))
                            offset += count
                        }
                        close(fd)
                    }
                    usleep(200_000)
                }
            }
        }

        /// QEMU's log of the latest run, headed so it is not taken for the console.
        private func printQEMULog(_ info: Machines.Info, always: Bool) throws(MachineError) {
            guard let log = info.qemuLog else {
                if always { throw MachineError("QEMU's log of \(target.name) is kept on the libvirt host, not here") }
                return
            }
            guard let text = try? String(contentsOf: URL(fileURLWithPath: log), encoding: .utf8) else {
                if !always { return }
                throw FileManager.default.fileExists(atPath: log)
                    ? MachineError("cannot read QEMU's log \(log)", hint: "libvirt's system daemon keeps it for root: sudo cat \(log)")
                    : MachineError("\(target.name) has no QEMU log yet (\(log))", hint: "start it with `machine start \(target.name)`")
            }
            print("--- QEMU's log of \(target.name)'s latest run (\(log)) ---")
            print(QEMULog.lastRun(in: text), terminator: "")
        }
    }
}
