import Virt

/// What the lifecycle verbs (start, stop, suspend, upgrade) ask of the world outside this
/// process: libvirt's domain, the guest over SSH, the host agent and the engine's socket.
/// `LibvirtRuntime` is the real one; unit tests put a double in its place, so the verbs'
/// decisions and their order are tested without a VM.
protocol MachineRuntime {
    /// libvirt's state of the machine's domain (stopped, "not defined" when it has none).
    func status(_ name: String) throws(MachineError) -> Domain.Status
    func hasSavedState(_ name: String) throws(MachineError) -> Bool
    func discardSavedState(_ name: String) throws(MachineError)
    /// Runs the machine from its saved state; returns at once (its network takes a moment).
    func restore(_ name: String) throws(MachineError)
    /// Waits until a restored guest's sshd answers again.
    func waitForRestoredGuest(_ machine: LockedMachine) throws(MachineError)
    /// Lets a guest a user paused run again; returns its uptime once its sshd answers.
    func resume(_ machine: LockedMachine) throws(MachineError) -> Double
    /// Boots the machine on `builds` (the domain defined anew, its disks, seed and shares, KVM
    /// with the fall back to TCG); returns the guest's uptime once its sshd answers.
    func boot(_ machine: LockedMachine, builds: MachineBuilds) throws(MachineError) -> Double
    /// Sets the guest's clock, installs `engine` if the guest has another version, and applies
    /// the engine's settings (and TLS files) of the machine's config.
    func provision(_ machine: LockedMachine, engine: EngineBundle) throws(MachineError) -> Provisioner.Outcome
    /// Stops the guest (cleanly unless `force`) and what served it; true if it stopped by itself.
    func stop(_ machine: LockedMachine, force: Bool, timeout: Double) throws(MachineError) -> Bool
    /// Saves the running guest's memory to disk and stops its QEMU.
    func save(_ name: String) throws(MachineError)

    /// Whether a boot pinned the guest's host key (the machine's known_hosts has one).
    func hostKeyPinned(_ machine: LockedMachine) -> Bool
    func agentRuns(_ machine: LockedMachine) -> Bool
    /// Stops the host agent; true if one ran.
    @discardableResult
    func stopAgent(_ machine: LockedMachine) -> Bool
    func startAgent(_ machine: LockedMachine) throws(MachineError)
    /// Whether the engine answers `/_ping` through the agent's socket within `timeout` seconds.
    func engineAnswers(_ machine: LockedMachine, timeout: Double) -> Bool
    func waitForEngine(_ machine: LockedMachine, timeout: Double) throws(MachineError)
    /// The last lines of the engine's log in a guest that is still up ("" when it cannot be read).
    func engineLogTail(_ machine: LockedMachine) -> String
}

/// Which builds a boot uses (`BuildSelection`, or a test's).
protocol BuildChooser {
    func builds(for config: MachineConfig, suite: String, quiet: Bool) throws(MachineError) -> MachineBuilds
    func engine(for config: MachineConfig, suite: String, quiet: Bool) throws(MachineError) -> EngineBundle
}

extension BuildSelection: BuildChooser {}
