import Foundation
@testable import MachineCore
import Testing
import Virt

/// Start, stop, suspend and an upgrade's rollback through a runtime double: what each verb
/// asks of libvirt, the guest and the agent, and in which order, for the states a machine is in.
@Suite struct MachineLifecycleTests {
    /// A machine's world in memory: one domain, its saved state, its agent and engine. Every
    /// action is written to `calls`; what only reads state is not.
    final class FakeRuntime: MachineRuntime {
        var domain = Domain.Status(state: .stopped, reason: "not defined")
        var saved = false
        var agent = false
        var engineUp = false
        /// Engines (cache keys) whose engine never answers after a boot on them.
        var failingEngines: Set<String> = []
        var runningEngine: String?
        var calls: [String] = []

        func status(_ name: String) throws(MachineError) -> Domain.Status { domain }
        func hasSavedState(_ name: String) throws(MachineError) -> Bool { saved }
        func discardSavedState(_ name: String) throws(MachineError) {
            calls.append("discard saved state")
            saved = false
        }
        func restore(_ name: String) throws(MachineError) {
            calls.append("restore")
            saved = false
            domain = Domain.Status(state: .running, reason: "restored")
        }
        func waitForRestoredGuest(_ machine: LockedMachine) throws(MachineError) { calls.append("wait for ssh") }
        func resume(_ machine: LockedMachine) throws(MachineError) -> Double {
            calls.append("resume")
            domain = Domain.Status(state: .running, reason: "unpaused")
            return 5
        }
        func boot(_ machine: LockedMachine, builds: MachineBuilds) throws(MachineError) -> Double {
            let engine = builds.engine.folder.lastPathComponent
            calls.append("boot on \(engine)")
            try BootRecord(try machine.config(), builds: builds).save(machine.files)
            domain = Domain.Status(state: .running, reason: "booted")
            keyPinned = true
            runningEngine = engine
            engineUp = false
            return 7
        }
        func provision(_ machine: LockedMachine, engine: EngineBundle) throws(MachineError) -> Provisioner.Outcome {
            calls.append("provision \(engine.folder.lastPathComponent)")
            return Provisioner.Outcome(installedVersion: engine.manifest.version, installed: false, settingsChanged: false)
        }
        func stop(_ machine: LockedMachine, force: Bool, timeout: Double) throws(MachineError) -> Bool {
            calls.append(force ? "stop hard" : "stop")
            domain = Domain.Status(state: .stopped, reason: force ? "destroyed" : "shutdown")
            engineUp = false
            return !force
        }
        func save(_ name: String) throws(MachineError) {
            calls.append("save")
            saved = true
            domain = Domain.Status(state: .stopped, reason: "saved")
        }
        /// Whether a boot pinned the host key (`boot` does).
        var keyPinned = true
        func hostKeyPinned(_ machine: LockedMachine) -> Bool { keyPinned }
        func agentRuns(_ machine: LockedMachine) -> Bool { agent }
        func stopAgent(_ machine: LockedMachine) -> Bool {
            defer { agent = false }
            if agent { calls.append("stop agent") }
            return agent
        }
        func startAgent(_ machine: LockedMachine) throws(MachineError) {
            calls.append("start agent")
            agent = true
        }
        func engineAnswers(_ machine: LockedMachine, timeout: Double) -> Bool { engineUp }
        func waitForEngine(_ machine: LockedMachine, timeout: Double) throws(MachineError) {
            calls.append("wait for engine")
            if let runningEngine, failingEngines.contains(runningEngine) {
                throw MachineError("the engine in \(machine.name) did not answer within \(Int(timeout)) s")
            }
            engineUp = true
        }
        func engineLogTail(_ machine: LockedMachine) -> String { "failed to start daemon: bad config" }
    }

    /// The builds a boot takes: the held ones by their keys, else `latest`.
    final class FakeBuilds: BuildChooser {
        var latest: MachineBuilds
        var known: [MachineBuilds]
        /// The suite of each choice asked for.
        var suites: [String] = []
        init(_ latest: MachineBuilds, also: [MachineBuilds] = []) {
            self.latest = latest
            known = [latest] + also
        }
        func builds(for config: MachineConfig, suite: String, quiet: Bool) throws(MachineError) -> MachineBuilds {
            suites.append(suite)
            guard let held = config.held else { return latest }
            return known.first { $0.held == held } ?? latest
        }
        func engine(for config: MachineConfig, suite: String, quiet: Bool) throws(MachineError) -> EngineBundle {
            try builds(for: config, suite: suite, quiet: quiet).engine
        }
    }

    let home: TestHome
    let runtime = FakeRuntime()
    let old: MachineBuilds
    let chooser: FakeBuilds

    init() throws {
        home = try TestHome()
        old = try home.builds(image: "i1", engine: "e1")
        chooser = FakeBuilds(old)
    }

    var lifecycle: MachineLifecycle {
        MachineLifecycle(runtime: runtime, builds: chooser, progress: { [home] in home.lines.append($0) })
    }

    func locked() throws -> LockedMachine { try LockedMachine("dev", copies: home.copies()) }

    @Test func aFirstStartBootsProvisionsStartsTheAgentAndWaitsForTheEngine() throws {
        let started = try lifecycle.start(try locked())
        #expect(runtime.calls == ["boot on e1", "provision e1", "start agent", "wait for engine"])
        #expect(!started.alreadyRunning && !started.resumed && started.sshReadyUptime == 7)
        #expect(BootRecord.last(home.store.files("dev")) == BootRecord(home.first, builds: old))
    }

    @Test func aStartOfAMachineThatIsUpChangesNothing() throws {
        _ = try lifecycle.start(try locked())
        runtime.calls = []
        let started = try lifecycle.start(try locked())
        #expect(runtime.calls.isEmpty)
        #expect(started.alreadyRunning)
        // Its agent gone: provisioned again (nothing installed) and a new agent.
        runtime.agent = false
        _ = try lifecycle.start(try locked())
        #expect(runtime.calls == ["provision e1", "start agent", "wait for engine"])
    }

    /// A start refuses a config.json it did not write even when the machine is up and the
    /// start would change nothing.
    @Test func aStartOfAMachineThatIsUpStillRefusesAForeignConfig() throws {
        _ = try lifecycle.start(try locked())
        var edited = home.first
        edited.mounts = [Share(hostPath: "/", guestPath: "/host")]
        try edited.encoded().write(to: home.store.files("dev").config)
        runtime.calls = []
        #expect {
            try lifecycle.start(try locked())
        } throws: { ($0 as? MachineError)?.kind == .configChanged }
        #expect(runtime.calls.isEmpty)
    }

    /// A first `up` that timed out leaves a QEMU running that nothing can log in to (no host
    /// key was pinned): the next start stops it and boots again, instead of failing to log in.
    @Test func theQEMUOfABootThatNeverFinishedIsStoppedAndTheMachineBootedAgain() throws {
        runtime.domain = Domain.Status(state: .running, reason: "booted")
        runtime.keyPinned = false
        runtime.agent = true
        let started = try lifecycle.start(try locked())
        #expect(runtime.calls == ["stop agent", "stop hard", "boot on e1", "provision e1", "start agent", "wait for engine"])
        #expect(!started.alreadyRunning)
        #expect(home.lines.contains("dev is running from a boot that never finished (no host key was pinned from its console); stopping it and booting it again"))
    }

    @Test func aLeftoverOfACrashedBootIsNamedAndItsAgentStoppedBeforeTheBoot() throws {
        runtime.domain = Domain.Status(state: .paused, reason: "ioerror")
        runtime.agent = true
        _ = try lifecycle.start(try locked())
        #expect(runtime.calls == ["stop agent", "boot on e1", "provision e1", "start agent", "wait for engine"])
        #expect(home.lines.contains("dev was paused (ioerror); stopping what is left of it and booting it again"))
    }

    @Test func aSuspendedMachineIsRestoredOnTheSameBuildsAndBootedAfreshOnOthers() throws {
        _ = try lifecycle.start(try locked())
        try lifecycle.suspend(try locked())
        #expect(runtime.calls.suffix(2) == ["stop agent", "save"])
        runtime.calls = []
        let resumed = try lifecycle.start(try locked())
        #expect(resumed.resumed)
        #expect(runtime.calls == ["restore", "wait for ssh", "provision e1", "start agent", "wait for engine"])

        try lifecycle.suspend(try locked())
        chooser.latest = try home.builds(image: "i1", engine: "e2")
        runtime.calls = []
        let booted = try lifecycle.start(try locked())
        #expect(!booted.resumed)
        #expect(runtime.calls == ["discard saved state", "boot on e2", "provision e2", "start agent", "wait for engine"])
    }

    @Test func aStopOfASuspendedMachineRestoresItToShutItDownCleanlyAndForceDiscardsIt() throws {
        _ = try lifecycle.start(try locked())
        try lifecycle.suspend(try locked())
        runtime.calls = []
        #expect(try lifecycle.stop(try locked(), force: false))
        #expect(runtime.calls == ["restore", "stop"])

        _ = try lifecycle.start(try locked())
        try lifecycle.suspend(try locked())
        runtime.calls = []
        #expect(try !lifecycle.stop(try locked(), force: true))
        #expect(runtime.calls == ["discard saved state"])
    }

    @Test func aMachineWithSharesIsNotSuspendedAndKeepsRunning() throws {
        var config = home.first
        config.mounts = [Share(hostPath: "/home/u", guestPath: "/home/u")]
        let machine = try locked()
        try machine.save(config)
        _ = try lifecycle.start(machine)
        runtime.calls = []
        #expect(throws: MachineError.self) { try lifecycle.suspend(machine) }
        #expect(runtime.calls.isEmpty && runtime.agent)
    }

    @Test func aPausedMachineIsResumed() throws {
        _ = try lifecycle.start(try locked())
        runtime.domain = Domain.Status(state: .paused, reason: "user")
        runtime.calls = []
        _ = try lifecycle.start(try locked())
        #expect(runtime.calls == ["resume", "provision e1", "start agent", "wait for engine"])
    }

    /// The new engine does not come up: the machine goes back to the builds it ran, is held
    /// there, and the cache's latest points at them again; all under one lock.
    @Test func anUpgradeWhoseEngineFailsIsRolledBackAndHeld() throws {
        let machine = try locked()
        _ = try lifecycle.start(machine)
        let new = try home.builds(image: "i2", engine: "e2", docker: "26.1.5")
        chooser.latest = new
        chooser.known.append(new)
        runtime.failingEngines = ["e2"]
        runtime.calls = []
        let upgrade = MachineUpgrade(machine, new: new, lifecycle: lifecycle)
        #expect(upgrade.plan.packageChanges == ["docker.io 20.10.24 -> 26.1.5"])
        #expect(throws: MachineError.self) { try upgrade.apply(engineTimeout: 5) }
        #expect(runtime.calls == ["stop agent", "stop", "boot on e2", "provision e2", "start agent", "wait for engine",
                                  "stop agent", "stop hard", "boot on e1", "provision e1", "start agent", "wait for engine"])
        #expect(try machine.config().held == old.held)
        #expect(try home.onDisk().held == old.held)
        let latest = home.paths.engineBundles.appendingPathComponent("latest-bookworm").resolvingSymlinksInPath()
        #expect(latest.lastPathComponent == "e1")
        // Held, a start stays on the old builds though the latest are others.
        chooser.latest = new
        runtime.calls = []
        _ = try lifecycle.stop(machine, force: false)
        _ = try lifecycle.start(machine)
        #expect(runtime.calls.contains("boot on e1"))
    }

    /// A start keeps the Debian release the machine ran last (bookworm, for one booted before
    /// there was a choice); a new machine gets the default; a chosen one wins.
    @Test func aStartKeepsTheSuiteTheMachineRanLast() throws {
        let machine = try locked()
        _ = try lifecycle.start(machine)
        #expect(chooser.suites == [DebianSuite.default])
        _ = try lifecycle.stop(machine, force: false)
        _ = try lifecycle.start(machine)
        #expect(chooser.suites.last == "bookworm")
        try machine.change { $0.suite = "trixie" }
        _ = try lifecycle.stop(machine, force: false)
        _ = try lifecycle.start(machine)
        #expect(chooser.suites.last == "trixie")
    }

    /// `upgrade --suite` boots the new suite's builds and keeps the choice once they answer;
    /// when they fail, the machine goes back and its choice stays as it was.
    @Test(arguments: [false, true])
    func anUpgradeToAnotherSuiteKeepsTheChoiceOnlyWhenItComesUp(fails: Bool) throws {
        let machine = try locked()
        _ = try lifecycle.start(machine)
        let new = try home.builds(image: "i2", engine: "e2", docker: "26.1.5", suite: "trixie")
        if fails { runtime.failingEngines = ["e2"] }
        let upgrade = MachineUpgrade(machine, new: new, lifecycle: lifecycle, chosenSuite: "trixie")
        if fails {
            #expect(throws: MachineError.self) { try upgrade.apply(engineTimeout: 5) }
            #expect(try machine.config().suite == nil)
            #expect(runtime.calls.last(where: { $0.hasPrefix("boot") }) == "boot on e1")
        } else {
            _ = try upgrade.apply(engineTimeout: 5)
            #expect(try home.onDisk().suite == "trixie")
            _ = try lifecycle.stop(machine, force: false)
            _ = try lifecycle.start(machine)
            #expect(chooser.suites.last == "trixie")
        }
    }

    @Test func anUpgradeThatComesUpReleasesTheHold() throws {
        let machine = try locked()
        try machine.change { $0.held = self.old.held }
        _ = try lifecycle.start(machine)
        let new = try home.builds(image: "i2", engine: "e2")
        chooser.latest = new
        let upgrade = MachineUpgrade(machine, new: new, lifecycle: lifecycle)
        let started = try upgrade.apply(engineTimeout: 5)
        #expect(started.sshReadyUptime == 7)
        #expect(try home.onDisk().held == nil)
        #expect(runtime.calls.suffix(4) == ["boot on e2", "provision e2", "start agent", "wait for engine"])
    }
}
