import FoundationEssentials
import HostOS

/// libvirt, asked from a short-lived `machine agent-libvirt` process by the agent of a machine
/// on this host. Loading libvirt's client library and its ~50 libraries costs a process about
/// 11 MB of resident memory, 15 MB once connected (docs/benchmarks.md), for the life of the
/// process: the agent, which runs as long as its machine, needs libvirt only now and then
/// (while its guest is silent, to put it to sleep and wake it, to read the trusted config, to
/// open a UDP forward), and an answer about 20 ms later is no loss there. The end of the
/// domain it watches needs no libvirt: it is QEMU's end (DomainWatch).
public struct LibvirtHelper: Sendable {
    /// The hidden command that answers (Sources/machine/AgentLibvirtCommand.swift).
    public static let command = "agent-libvirt"

    /// The agent's own binary (/proc/self/exe): the same version, even after an upgrade
    /// replaced the file.
    let executable: String
    let uri: String
    let name: String

    /// A look: the sighting in words (`Sighting.encoded`).
    static let lookTimeout: Double = 10
    /// A pause, a resume, the config, a forward: what libvirt itself may take under load.
    static let actTimeout: Double = 30

    public enum Verb: String, Sendable, CaseIterable {
        case look, pause, resume, config, monitor
    }

    /// Runs the helper; what it printed, or its error (its message, without "Error: ").
    func ask(_ verb: Verb, _ arguments: [String] = [], timeout: Double) throws(MachineError) -> String {
        let result: Subprocess.Result
        do {
            result = try Subprocess.run([executable, Self.command, "--connect", uri, name, verb.rawValue] + arguments, timeout: timeout)
        } catch {
            throw MachineError("cannot ask libvirt about \(name): \(error)")
        }
        if result.timedOut { throw MachineError("libvirt gave no answer about \(name) within \(Int(timeout)) s") }
        guard result.status == 0 else {
            let said = result.output.trimmed().split(separator: "\n").first.map(String.init) ?? "exit status \(result.status)"
            throw MachineError(said.hasPrefix("Error: ") ? String(said.dropFirst(7)) : said)
        }
        return result.output
    }

    /// What the helper prints for `verb`: run by `machine agent-libvirt` with libvirt in its
    /// own process. `arguments`: the domain UUID for look, pause and resume; HMP commands for
    /// monitor.
    public static func answer(machines: Machines, name: String, verb: Verb, arguments: [String]) throws(MachineError) -> String {
        switch verb {
        case .look, .pause, .resume:
            guard arguments.count == 1 else { throw MachineError("\(verb.rawValue) takes the domain's UUID", kind: .usage) }
            let watch = DomainWatch(uri: machines.uri, paths: machines.paths, name: name, uuid: arguments[0])
            switch verb {
            case .look: return watch.look().encoded
            case .pause: try watch.pause()
            default: try watch.resume()
            }
            return ""
        case .config:
            return String(decoding: try machines.trustedConfig(name).encoded(), as: UTF8.self)
        case .monitor:
            let answers = try QEMUForwards(uri: machines.uri, paths: machines.paths, name: name).monitor(arguments)
            return String(decoding: (try? JSONEncoder().encode(answers)) ?? Data("[]".utf8), as: UTF8.self)
        }
    }
}

extension DomainWatch.Sighting {
    /// One line: the state, then a tab and libvirt's words for gone and unknown.
    var encoded: String {
        switch self {
        case .running: "running"
        case .paused: "paused"
        case .stopped: "stopped"
        case .gone(let why): "gone\t" + why
        case .unknown(let why): "unknown\t" + why
        }
    }

    init(encoded: String) {
        let parts = encoded.trimmed().split(separator: "\t", maxSplits: 1).map(String.init)
        let why = parts.count > 1 ? parts[1] : ""
        switch parts.first ?? "" {
        case "running": self = .running
        case "paused": self = .paused
        case "stopped": self = .stopped
        case "gone": self = .gone(why)
        case "unknown": self = .unknown(why)
        default: self = .unknown("the libvirt helper answered \(encoded.debugDescription)")
        }
    }
}
