import ArgumentParser
import FoundationEssentials
import HostOS
import MachineCore

extension Machine {
    struct Ls: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List machines with their state (read from libvirt).",
            discussion: """
                A machine whose folder is damaged is listed as "broken" and named on stderr;
                the others are listed as usual.

                EXAMPLES:
                  machine ls
                  machine ls --format json
                """)

        enum Format: String, ExpressibleByArgument { case table, json }

        @OptionGroup var global: GlobalOptions
        @Option(help: "table or json.") var format: Format = .table

        func run() throws {
            try perform { () throws(MachineError) in
                let machines = try global.machines()
                // A machine on a remote libvirt host is asked there, one connection per host;
                // the others on this host's daemon, even when --connect named a remote one.
                let localURI = machines.remote == nil ? machines.uri : Hypervisor.defaultURI(flag: nil)
                var daemons: [String: Result<Machines, MachineError>] = [:]
                func machinesFor(_ config: MachineConfig) throws(MachineError) -> Machines {
                    let uri = config.connect ?? localURI
                    guard uri != machines.uri else { return machines }
                    let connected = daemons[uri] ?? Result { () throws(MachineError) in try GlobalOptions.machines(uri: uri) }
                    daemons[uri] = connected
                    return try connected.get()
                }
                var infos: [Machines.Info] = []
                var broken: [(String, MachineError)] = []
                var unreachable: [(String, MachineConfig)] = []
                for (name, config) in machines.all() {
                    switch config {
                    case .success(let config):
                        do throws(MachineError) {
                            infos.append(try machinesFor(config).info(name))
                        } catch {
                            if let uri = config.connect, case .failure = daemons[uri] {
                                StandardStream.error.write("warning: cannot ask about \(name): \(error)\n")
                                unreachable.append((name, config))
                            } else {
                                broken.append((name, error))
                            }
                        }
                    case .failure(let error):
                        broken.append((name, error))
                    }
                }
                for (name, error) in broken {
                    StandardStream.error.write("warning: machine \(name) is broken: \(error)\n")
                }
                if format == .json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    encoder.dateEncodingStrategy = .iso8601
                    let data = (try? encoder.encode(infos)) ?? Data("[]".utf8)
                    print(String(decoding: data, as: UTF8.self))
                    return
                }
                let rows = infos.map { info in
                    [info.name, info.stateLine, info.host, "\(info.config.cpus)", "\(info.config.memoryMiB) MiB",
                     Self.disk(info), "127.0.0.1:\(info.config.sshPort)"]
                } + unreachable.map { name, config in
                    [name, "unreachable", (try? RemoteLibvirt(uri: config.connect ?? ""))??.destination ?? "-", "\(config.cpus)",
                     "\(config.memoryMiB) MiB", "\(config.diskGiB) GiB", "127.0.0.1:\(config.sshPort)"]
                } + broken.map { [$0.0, "broken", "-", "-", "-", "-", "-"] }
                printTable(header: ["NAME", "STATE", "HOST", "CPUS", "MEMORY", "DISK (ON HOST)", "SSH"], rows: rows)
                for warning in infos.flatMap(\.warnings) { StandardStream.error.write(warning + "\n") }
            }
        }

        /// The disk's size, and what its file holds on this host: "20 GiB (1.3 GiB)".
        static func disk(_ info: Machines.Info) -> String {
            let size = "\(info.config.diskGiB) GiB"
            guard let held = info.dataDiskOnHost?.allocatedBytes else { return size }
            return size + " (" + String(cFormat: "%.1f GiB", Double(held) / Double(1 << 30)) + ")"
        }
    }
}

func printTable(header: [String], rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        let cells = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell + String(repeating: " ", count: max(0, widths[index] - cell.count))
        }
        print(cells.joined(separator: "   "))
    }
}
