import FoundationEssentials

/// Start, stop and suspend of a machine held under its lock, over a runtime: the decisions
/// (`StartPlan`) and their order live here, the work in the runtime.
struct MachineLifecycle {
    let runtime: any MachineRuntime
    let builds: any BuildChooser
    let progress: (String) -> Void

    /// What a start of the machine finds; the builds a boot would use now come back too when
    /// they had to be chosen (to compare with a saved state's).
    func snapshot(_ machine: LockedMachine, provision: Bool, quietBuild: Bool) throws(MachineError) -> (StartSnapshot, builds: MachineBuilds?) {
        var snapshot = StartSnapshot(domain: try runtime.status(machine.name), provisionAsked: provision)
        var chosen: MachineBuilds?
        if snapshot.needsSavedState, try runtime.hasSavedState(machine.name) {
            let config = try machine.config()
            let now = try builds.builds(for: config, suite: suite(machine), quiet: quietBuild)
            chosen = now
            snapshot.savedState = BootRecord.last(machine.files)?.isSameBoot(as: BootRecord(config, builds: now)) == true ? .sameBoot : .otherBoot
        }
        snapshot.hostKeyPinned = runtime.hostKeyPinned(machine)
        snapshot.agentRunning = runtime.agentRuns(machine)
        snapshot.asleep = IdleSleep.isAsleep(snapshot.domain, files: machine.files)
        if snapshot.needsEnginePing {
            snapshot.engineAnswers = runtime.engineAnswers(machine, timeout: 2)
        }
        return (snapshot, chosen)
    }

    /// The Debian suite a boot of the machine uses (`DebianSuite.forBoot`).
    func suite(_ machine: LockedMachine) throws(MachineError) -> String {
        DebianSuite.forBoot(try machine.config(), lastBoot: BootRecord.last(machine.files))
    }

    /// Brings the machine up as its `StartPlan` says, then provisions the engine, starts the
    /// host agent and waits for the engine when the plan asks for it. A boot uses `builds` when
    /// given (an upgrade's), else those `BuildChooser` chooses.
    func start(_ machine: LockedMachine, quietBuild: Bool = false, engineTimeout: Double = 180, provision: Bool = false,
               builds given: MachineBuilds? = nil) throws(MachineError) -> Machines.Started {
        let name = machine.name
        // Trusted before anything else, whatever the plan: a config.json rewritten behind
        // machine's back is refused even by a start that would change nothing.
        _ = try machine.config()
        let (snapshot, chosen) = try snapshot(machine, provision: provision, quietBuild: quietBuild)
        var booted = given ?? chosen
        let plan = StartPlan(snapshot)
        var uptime: Double?
        switch plan.bring {
        case .nothing:
            break
        case .resume:
            progress(snapshot.asleep ? "\(name) was asleep; waking it" : "\(name) was paused; resuming it")
            uptime = try runtime.resume(machine)
        case .restore:
            progress("resuming \(name) from its saved state")
            if runtime.stopAgent(machine) { progress("stopped the host agent of \(name)'s earlier boot") }
            try runtime.restore(name)
            try runtime.waitForRestoredGuest(machine)
        case .discardSavedStateAndBoot, .boot, .stopUnfinishedAndBoot:
            // An agent serves one boot: one left from an earlier boot (QEMU killed or crashed,
            // the host asleep) would keep reaching for that boot's ports.
            if runtime.stopAgent(machine) { progress("stopped the host agent of \(name)'s earlier boot") }
            if plan.bring == .stopUnfinishedAndBoot {
                progress("\(name) \(BootWatcher.describe(snapshot.domain)) from a boot that never finished (no host key was pinned from its console); stopping it and booting it again")
                _ = try runtime.stop(machine, force: true, timeout: 10)
            } else if plan.bring == .discardSavedStateAndBoot {
                progress("the saved state of \(name) was made with another image, engine or shape; booting it afresh (its containers were not shut down cleanly)")
                try runtime.discardSavedState(name)
            } else if case .boot(let leftover?) = plan.bring {
                progress("\(name) \(BootWatcher.describe(leftover)); stopping what is left of it and booting it again")
            }
            let now: MachineBuilds
            if let given { now = given } else if let chosen { now = chosen } else {
                now = try builds.builds(for: try machine.config(), suite: suite(machine), quiet: quietBuild)
            }
            booted = now
            uptime = try runtime.boot(machine, builds: now)
        }
        var outcome: Provisioner.Outcome?
        if plan.provision {
            // A guest that runs already needs the engine only, not an image a boot would use.
            let engine: EngineBundle
            if let booted { engine = booted.engine } else { engine = try builds.engine(for: try machine.config(), suite: suite(machine), quiet: quietBuild) }
            outcome = try runtime.provision(machine, engine: engine)
            try runtime.startAgent(machine)
            try runtime.waitForEngine(machine, timeout: engineTimeout)
        }
        return Machines.Started(alreadyRunning: plan.alreadyRunning, resumed: plan.bring == .restore, sshReadyUptime: uptime,
                                installedEngine: outcome?.installed == true ? outcome?.installedVersion : nil,
                                settingsChanged: outcome?.settingsChanged ?? false, dockerSocket: machine.files.dockerSocket.path)
    }

    /// Stops the machine; true if the guest shut down cleanly, false if it was stopped hard.
    /// A saved state is restored first to be shut down cleanly (its memory holds writes the
    /// data disk has not seen), or thrown away by `force`.
    @discardableResult
    func stop(_ machine: LockedMachine, force: Bool, timeout: Double = 60) throws(MachineError) -> Bool {
        // The agent first, so it does not try to reconnect to a guest going away.
        runtime.stopAgent(machine)
        if try runtime.hasSavedState(machine.name) {
            if force {
                try runtime.discardSavedState(machine.name)
                return false
            }
            progress("restoring \(machine.name) from its saved state to shut it down cleanly")
            try runtime.restore(machine.name)
        }
        return try runtime.stop(machine, force: force, timeout: timeout)
    }

    /// Saves the running machine to disk and stops it; `start` (or `resume`) brings it back.
    func suspend(_ machine: LockedMachine) throws(MachineError) {
        let name = machine.name
        let status = try runtime.status(name)
        guard status.state == .running || status.state == .paused else {
            throw MachineError("\(name) is not running (\(status.state.rawValue))", hint: "`machine up \(name)` starts it")
        }
        // Checked before anything stops: QEMU refuses to save a guest with a mounted 9p share
        // (a migration blocker) or any vhost-user-fs device, and says so only after the agent
        // would be gone.
        if let shares = BootRecord.last(machine.files)?.mounts, !shares.isEmpty {
            let suffix = MachineName.commandSuffix(name)
            let idle = try machine.config().idleSleepSeconds
            let sleeps = idle > 0 ? "it sleeps by itself after \(IdleSleep.describe(idle)) without use (no CPU, its page cache given back) and the next docker command or connection to a published port wakes it; "
                : "`machine set\(suffix) --idle-sleep 5m` lets it sleep when idle (no CPU) and wake on the next docker command; "
            throw MachineError("cannot suspend \(name): QEMU cannot save a machine with shared folders (\(shares.map(\.hostPath).joined(separator: ", ")))",
                               hint: sleeps + "`machine stop\(suffix)` keeps its containers and volumes on its disk; machines made with --no-mounts can be suspended")
        }
        // A sleeping guest is woken first: a saved state restores paused otherwise.
        if IdleSleep.isAsleep(status, files: machine.files) {
            _ = try runtime.resume(machine)
        }
        // The agent first: its session ends with the guest, and the next start makes a new one.
        runtime.stopAgent(machine)
        progress("saving \(name)'s memory to disk")
        try runtime.save(name)
    }
}
