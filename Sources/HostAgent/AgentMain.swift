import FoundationEssentials
import Dispatch
import HostOS
import MachineCore
#if canImport(Glibc)
import Glibc  // the agent's own pid file, lock descriptor and start-up waits
#endif

/// The host agent's main, run by `machine agent NAME`; `AgentProcess` (MachineCore) starts
/// and stops that process.
public enum AgentMain {
    /// The body of `machine agent NAME`: takes the agent lock (exits quietly if another agent
    /// holds it), serves the engine socket and the forwarded ports, runs until stopped. Where
    /// the guest serves the ports a split session of their own, a second `Agent` holds it on a
    /// thread of its own (each libssh2 session belongs to one thread).
    /// `loadConfig` reads the machine's config whenever the manual forwards are reloaded.
    /// `udp`: QEMU's own forwards for published UDP ports (nil on a remote libvirt host).
    /// `watch`: the domain this boot runs in, whose end (or replacement) ends the agent.
    public static func serve(_ process: AgentProcess, guest: GuestSSH, udp: QEMUForwards?, watch: DomainWatch?,
                             loadConfig: @escaping () throws(MachineError) -> MachineConfig) throws(MachineError) {
        Agent.installSignalHandlers()
        let held = try onHost { () throws(SystemError) in try FileLock.tryExclusive(process.files.agentLock.path) }
        guard let lock = held else {
            AgentProcess.log("another agent serves \(process.name) already; exiting")
            return
        }
        // Held until the agent returns from here (the process ends then).
        defer { withExtendedLifetime(lock) {} }
        let lockFD = lock.fd
        try AtomicFile.save(Data("\(getpid())\n".utf8), to: process.files.agentPid, mode: 0o600)
        AgentProcess.logPath = process.files.agentLog.path
        AgentProcess.log("agent \(getpid()) for \(process.name) starting" + (watch?.uuid.map { " (domain UUID \($0))" } ?? ""))
        let lifeline = AgentLifeline(lockPath: process.files.agentLock.path, lockFD: lockFD, watch: watch, log: AgentProcess.log,
                                     chores: { process.trimConsoleLog() })
        lifeline.start()
        let agent = Agent(guest: guest, lifeline: lifeline, log: AgentProcess.log)
        try agent.listen(unixSocket: process.files.dockerSocket.path, name: "docker.sock", target: .unixSocket(AgentProcess.guestDockerSocket))
        let forwarder = guest.hasLink(.ports) ? Agent(guest: guest, link: .ports, keepsClock: false, lifeline: lifeline, log: AgentProcess.log) : agent
        /// The config, or nil after saying what goes without it.
        func readConfig(without: String) -> MachineConfig? {
            do throws(MachineError) {
                return try loadConfig()
            } catch {
                AgentProcess.log("\(without): \(error.description)")
                return nil
            }
        }
        // Read once at the start for the forwards, the sleep and the shares (for a machine on
        // this host each read is a libvirt helper process: LibvirtHelper); read anew when
        // `machine port add` or `set` asks the forwards to reload.
        let startConfig = readConfig(without: "no config: no manual forwards, idle sleep or host edits in shares")
        var unread = startConfig
        forwarder.enablePortForwarding(statusFile: process.files.portsStatus, udp: udp) {
            defer { unread = nil }
            return unread ?? readConfig(without: "kept the forwards as they were")
        }
        // On a libvirt it can pause (not in tests, which watch no domain).
        if let watch {
            let sleeper = IdleSleeper(guest: guest, watch: watch.twin(), files: process.files,
                                      idleAfter: startConfig?.idleSleepSeconds ?? 0,
                                      lastGuestWord: { lifeline.lastGuestWord }, log: AgentProcess.log)
            lifeline.follow(sleeper: sleeper)
            agent.sleeper = sleeper
            forwarder.sleeper = sleeper
            sleeper.start()
        }
        startResolver(process)
        let disk = DiskWatcher(guest: guest, destination: process.files.dataDiskUsage, log: AgentProcess.log)
        disk.start()
        // A container that ended may have filled the disk: `status` says so at once.
        forwarder.containersChanged = { disk.measureSoon() }
        if let config = startConfig {
            ShareEventForwarder(guest: agent.guest, shares: config.mounts, machineHome: Paths().home.path, log: AgentProcess.log).start()
        }
        if forwarder !== agent {
            let forwarded = ForwarderThread(forwarder)
            forwarded.start()
            agent.run()
            forwarded.wait()
        } else {
            agent.run()
        }
        if lifeline.ownsFolder { unlink(process.files.agentPid.path) }
        AgentProcess.log("agent \(getpid()) stopped")
        close(lockFD)
    }
}

extension AgentMain {
    /// The guest's DNS server (HostResolver), on the port this boot chose; none for a boot
    /// that chose none (a remote machine, an older image). A port someone took since is tried
    /// again every few seconds, said once in the log.
    static func startResolver(_ process: AgentProcess) {
        guard let text = try? String(contentsOf: process.files.hostResolverPort, encoding: .utf8),
              let port = Int(text.trimmed()) else { return }
        let resolver = HostResolver(.init(port: port, hostNames: GuestContract.hostNames, hostAddress: GuestContract.hostAddress),
                                    log: AgentProcess.log)
        Threads.detach {
            var complained = false
            while true {
                do {
                    try resolver.start()
                    AgentProcess.log("resolver: answering the guest's DNS on 127.0.0.1:\(port) as this host resolves")
                    return
                } catch {
                    if !complained { AgentProcess.log("resolver: \(error); the guest's names do not resolve until it is free (trying every 5 s)") }
                    complained = true
                    sleep(5)
                }
            }
        }
    }
}

/// The forwarded ports' agent on a thread of its own, until the same signal stops both loops.
private final class ForwarderThread: @unchecked Sendable {
    private let agent: Agent
    private let done = DispatchSemaphore(value: 0)

    init(_ agent: Agent) { self.agent = agent }

    func start() {
        Threads.detach { [self] in
            agent.run()
            done.signal()
        }
    }

    /// Returns once its loop has closed its listeners and removed its status file.
    func wait() { done.wait() }
}
