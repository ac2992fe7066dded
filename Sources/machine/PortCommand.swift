import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Port: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List and manage the machine's port forwards to the host.",
            discussion: """
                Ports that running containers publish (docker run -p 8080:80) are forwarded
                from the host's 127.0.0.1 (or --publish-address) by the host agent, with
                nothing to do. `port add` forwards a port of the VM itself, kept in the
                machine's config and opened again at every start.
                """,
            subcommands: [Ls.self, Add.self, Rm.self],
            defaultSubcommand: Ls.self)

        struct Ls: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List the forwards, automatic and manual, with their container and state.",
                discussion: "EXAMPLES:\n  machine port ls\n  machine port ls dev --format json")

            @OptionGroup var global: GlobalOptions
            @OptionGroup var target: NameArgument
            @Option(help: "table or json.") var format = "table"

            func run() throws {
                try perform { () throws(MachineError) in
                    let forwards = try global.machines(for: target.name).forwards(target.name)
                    if format == "json" {
                        let encoder = JSONEncoder()
                        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                        print(String(decoding: (try? encoder.encode(forwards)) ?? Data(), as: UTF8.self))
                        return
                    }
                    let rows = forwards.map { status in
                        let f = status.forward
                        return ["\(f.hostAddress):\(f.hostPort)", "\(f.guestAddress):\(f.guestPort)", f.proto,
                                f.origin, status.state]
                    }
                    printTable(header: ["HOST", "GUEST", "PROTO", "CONTAINER", "STATE"], rows: rows)
                }
            }
        }

        struct Add: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Forward a host port to a port in the machine (kept in its config).",
                discussion: "UDP goes through QEMU's own forwarding (machines on this host).\n\nEXAMPLES:\n  machine port add 8080:80\n  machine port add dev 5432\n  machine port add 5353:53/udp")

            @OptionGroup var global: GlobalOptions
            @Argument(help: "NAME (default: default), then HOSTPORT:GUESTPORT[/udp].") var words: [String]

            func run() throws {
                try perform { () throws(MachineError) in
                    let (name, spec) = try nameAndSpec(words)
                    let forward = try ManualForward(parsing: spec)
                    let machines = try global.machines(for: name)
                    try machines.addForward(name, forward)
                    print("forwarding host port \(forward.hostPort)\(forward.proto == "tcp" ? "" : "/\(forward.proto)") to \(name):\(forward.guestPort)" + (machines.agentPid(name) == nil ? " once \(name) is up" : ""))
                }
            }
        }

        struct Rm: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Remove a manual forward.",
                discussion: "EXAMPLES:\n  machine port rm 8080\n  machine port rm dev 5432\n  machine port rm 5353/udp")

            @OptionGroup var global: GlobalOptions
            @Argument(help: "NAME (default: default), then HOSTPORT[/udp] (or HOSTPORT:GUESTPORT[/udp]).") var words: [String]

            func run() throws {
                try perform { () throws(MachineError) in
                    let (name, spec) = try nameAndSpec(words)
                    let forward = try ManualForward(parsing: spec)
                    try global.machines(for: name).removeForward(name, hostPort: forward.hostPort, proto: forward.proto)
                    print("removed the forward from host port \(forward.hostPort)\(forward.proto == "tcp" ? "" : "/\(forward.proto)")")
                }
            }
        }
    }
}

/// `[NAME] SPEC`: the machine is optional, like everywhere else.
private func nameAndSpec(_ words: [String]) throws(MachineError) -> (String, String) {
    switch words.count {
    case 1: return (MachineName.default, words[0])
    case 2:
        try MachineName.validate(words[0])
        return (words[0], words[1])
    default:
        throw MachineError("expected [NAME] HOSTPORT:GUESTPORT", hint: "e.g. machine port add 8080:80", kind: .usage)
    }
}
