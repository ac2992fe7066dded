import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Autostart: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a machine again when the host restarts (root's) or when you log in (yours).",
            discussion: """
                `on` marks the machine and installs a systemd unit for this machine home
                (root: /etc/systemd/system, at boot; an ordinary user:
                ~/.config/systemd/user, at login, or at boot with `loginctl enable-linger`)
                that runs `machine autostart --start`: every marked machine is started with its
                agent, forwards and shares, as `machine start` does, also after a crash that
                killed QEMU and the agents. On a host without systemd the unit is written
                but nothing runs it; run `machine autostart --start` from your own start-up.
                `off` of the last marked machine (or its `rm`) removes the unit again.
                Without arguments, lists the marked machines.

                EXAMPLES:
                  machine autostart on                 # the default machine
                  machine autostart dev on
                  machine autostart dev off
                  machine autostart                    # which machines are marked
                  machine autostart --start            # what the unit runs
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("[NAME] on|off: the machine (default: default), then on or off.", valueName: "words"))
        var words: [String] = []
        @Flag(help: "Start every machine of this home that is marked (what the systemd unit runs).") var start = false

        func validate() throws {
            if start && !words.isEmpty { throw ValidationError("--start takes no machine name or on|off") }
            if words.count > 2 { throw ValidationError("give at most a machine name and on|off") }
            if let last = words.last, !["on", "off"].contains(last) {
                throw ValidationError("the last argument must be on or off, not '\(last)'")
            }
            if words.count == 2 {
                do { try MachineName.validate(words[0]) } catch { throw ValidationError(error.description) }
            }
        }

        func run() throws {
            try perform { () throws(MachineError) in
                if start { return try startMarked() }
                guard let choice = words.last else { return try list() }
                let name = words.count == 2 ? words[0] : MachineName.default
                let machines = try global.machines(for: name)
                let on = choice == "on"
                let changed = try machines.updateAutostart(name, on)
                print("\(name): autostart \(on ? "on" : "off")\(changed ? "" : " (as it was)")")
                let service = AutostartService.current(paths: machines.paths)
                for line in try on ? service.install() : service.removeUnlessMarked(Self.marked(machines)) { print(line) }
            }
        }

        private func list() throws(MachineError) {
            let machines = try global.machines()
            let marked = Self.marked(machines)
            print(marked.isEmpty ? "no machine is marked for autostart" : "marked for autostart: \(marked.joined(separator: ", "))")
            let service = AutostartService.current(paths: machines.paths)
            let installed = FileManager.default.fileExists(atPath: service.unitFile.path)
            print("unit: \(service.unitFile.path)\(installed ? "" : " (not written yet)")"
                  + (AutostartService.systemdRuns ? "" : "; no systemd runs on this host: run `machine autostart --start` from your own start-up"))
        }

        /// The machines of this home marked for autostart.
        static func marked(_ machines: Machines) -> [String] {
            machines.all().compactMap { entry in (try? entry.config.get())?.autostart == true ? entry.name : nil }
        }

        /// Every marked machine, one after another; one that fails does not stop the rest.
        private func startMarked() throws(MachineError) {
            let machines = try global.machines()
            var failed: [String] = []
            for entry in machines.all() {
                guard let config = try? entry.config.get(), config.autostart else { continue }
                do {
                    let started = try global.machines(for: entry.name).start(entry.name)
                    print(started.alreadyRunning ? "\(entry.name) is already running" : "\(entry.name) started")
                } catch {
                    var standardError = StandardError()
                    print("error: \(entry.name): \(error)", to: &standardError)
                    failed.append(entry.name)
                }
            }
            if !failed.isEmpty {
                throw MachineError("\(failed.count) marked machine(s) did not start: \(failed.joined(separator: ", "))",
                                   hint: "see the errors above; `machine start NAME` tries one again")
            }
        }
    }
}
