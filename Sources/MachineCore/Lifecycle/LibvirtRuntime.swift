import FoundationEssentials
import HostOS
import Virt

/// The runtime of the machines of one home on one libvirt host (this one, or a remote one over
/// qemu+ssh): domains through `Hypervisor`, guests over SSH, the host agent as a process here.
struct LibvirtRuntime: MachineRuntime {
    let store: MachineStore
    let hypervisor: Hypervisor
    let paths: Paths
    /// The libvirt host when it is not this one: its machines' files are volumes there, and
    /// their sshd is reached through it.
    let remote: RemoteLibvirt?
    let progress: (String) -> Void

    /// How to reach the machine's sshd.
    func guest(_ config: MachineConfig) -> GuestSSH {
        GuestSSH(name: config.name, port: config.sshPort, files: store.files(config.name), jump: remote)
    }

    /// The machine's own volumes on its remote libvirt host (nil for one on this host).
    func remoteVolumes(_ name: String) -> RemoteVolumes? {
        remote.map { RemoteVolumes(connection: hypervisor.connection, host: $0.destination, domain: hypervisor.domainName(name), progress: progress) }
    }

    /// Reads the machine's state for the boot watcher, with QEMU's last error line.
    func statusReader(_ name: String) -> () -> (Domain.Status, qemuError: String?) {
        let hypervisor = self.hypervisor
        return {
            let status = (try? hypervisor.status(name)) ?? Domain.Status(state: .unknown, reason: "libvirt did not answer")
            return (status, status.state == .running ? nil : QEMULog.lastError(at: hypervisor.qemuLog(name)))
        }
    }

    func status(_ name: String) throws(MachineError) -> Domain.Status { try hypervisor.status(name) }
    func hasSavedState(_ name: String) throws(MachineError) -> Bool { try hypervisor.hasSavedState(name) }
    func discardSavedState(_ name: String) throws(MachineError) { try hypervisor.discardSavedState(name) }
    func restore(_ name: String) throws(MachineError) { try hypervisor.restore(name) }
    func save(_ name: String) throws(MachineError) { try hypervisor.save(name) }

    /// A restored guest runs at once, but its network takes a moment to answer again. Its sshd
    /// runs where it was; the key pinned at its first boot is checked at login.
    func waitForRestoredGuest(_ machine: LockedMachine) throws(MachineError) {
        let guest = guest(try machine.config())
        let deadline = Date().addingTimeInterval(30)
        while true {
            do {
                _ = try guest.connect(timeout: 5)
                return
            } catch {
                if Date() > deadline { throw error }
                Threads.sleep(0.2)
            }
        }
    }

    func resume(_ machine: LockedMachine) throws(MachineError) -> Double {
        try hypervisor.resume(machine.name)
        IdleSleep.clearMark(machine.files)
        let uptime: Double
        do {
            uptime = try BootWatcher.waitForSSH(files: machine.files, name: machine.name, status: statusReader(machine.name))
        } catch {
            throw error.machineError
        }
        _ = try BootWatcher.pinHostKey(files: machine.files, config: try machine.config())
        return uptime
    }

    func provision(_ machine: LockedMachine, engine: EngineBundle) throws(MachineError) -> Provisioner.Outcome {
        let config = try machine.config()
        let guest = guest(config)
        let session = try guest.connect()
        // A guest that was paused (or a host that slept) has a clock that stopped with it.
        if let offset = try GuestClock.set(over: session, guest: guest) {
            progress("set the clock of \(machine.name), which was \(abs(offset)) s \(offset > 0 ? "behind" : "ahead")")
        }
        return try Provisioner(session: session, guest: guest, progress: progress)
            .provision(bundle: engine, config: config, tls: config.tlsPort == nil ? [] : EngineTLS.serverFiles(machine.files))
    }

    func stop(_ machine: LockedMachine, force: Bool, timeout: Double) throws(MachineError) -> Bool {
        let clean = try hypervisor.stop(machine.name, force: force, timeout: timeout)
        IdleSleep.clearMark(machine.files)
        // Each ends with its QEMU; one QEMU never connected to would wait for good.
        UserVirtiofsd.stopAll(pidsFile: machine.files.virtiofsdPids)
        return clean
    }

    func hostKeyPinned(_ machine: LockedMachine) -> Bool {
        (try? GuestSSH.pinnedHostKey(machine.files, name: machine.name)) != nil
    }

    func agentRuns(_ machine: LockedMachine) -> Bool {
        AgentProcess(name: machine.name, files: machine.files).runningPid() != nil
    }

    @discardableResult
    func stopAgent(_ machine: LockedMachine) -> Bool {
        AgentProcess(name: machine.name, files: machine.files).stop()
    }

    func startAgent(_ machine: LockedMachine) throws(MachineError) {
        _ = try AgentProcess(name: machine.name, files: machine.files).start(uri: hypervisor.connection.uri)
    }

    func engineAnswers(_ machine: LockedMachine, timeout: Double) -> Bool {
        EngineAPI.ping(socket: machine.files.dockerSocket.path, timeout: timeout)
    }

    func waitForEngine(_ machine: LockedMachine, timeout: Double) throws(MachineError) {
        let started = Date()
        var nextReport = 5.0
        progress("waiting for the engine")
        while !EngineAPI.ping(socket: machine.files.dockerSocket.path) {
            let waited = Date().timeIntervalSince(started)
            if waited > timeout {
                throw MachineError("the engine in \(machine.name) did not answer within \(Int(timeout)) s",
                                   hint: "see `machine ssh \(machine.name) -- tail /var/log/docker.log` and \(machine.files.agentLog.path)")
            }
            if waited >= nextReport {
                progress("still waiting for the engine (\(Int(waited)) s)")
                nextReport += 5
            }
            Threads.sleep(0.1)
        }
    }

    /// The guest's /var/log is in memory and goes with the next boot: read it while it is up.
    func engineLogTail(_ machine: LockedMachine) -> String {
        guard let config = try? machine.config(), let session = try? guest(config).connect(timeout: 10),
              let result = try? session.run("tail -n 5 /var/log/docker.log 2>/dev/null"), result.status == 0
        else { return "" }
        return String(decoding: result.output, as: UTF8.self)
    }
}
