import FoundationEssentials

/// The engine's TLS endpoint of a machine held under its lock (`--tls`, `machine
/// regenerate-certs`): its certificates made, and a running engine restarted with them.
struct MachineTLS {
    let lifecycle: MachineLifecycle
    let runtime: LibvirtRuntime

    /// Gives the machine a TLS endpoint if it has none: a host port and new certificates. A
    /// running machine gets them at once (dockerd restarts); returns true if anything changed.
    func enable(_ machine: LockedMachine) throws(MachineError) -> Bool {
        var config = try machine.config()
        guard config.tlsPort == nil else { return false }
        try EngineTLS.make(machine.files, name: machine.name)
        config.tlsPort = try MachineStore.freeLoopbackPort()
        try machine.save(config)
        try push(machine)
        return true
    }

    /// New certificates in place of the old (a new CA, so the old client certificate is
    /// refused from now on); a running machine's engine restarts with them.
    func regenerate(_ machine: LockedMachine) throws(MachineError) {
        guard try machine.config().tlsPort != nil else { throw Self.noEndpoint(machine.name) }
        try EngineTLS.make(machine.files, name: machine.name)
        try push(machine)
    }

    /// DOCKER_HOST, DOCKER_CERT_PATH and DOCKER_TLS_VERIFY for the machine's TLS endpoint.
    static func environment(_ config: MachineConfig, files: MachineFiles) throws(MachineError) -> [(String, String)] {
        guard let port = config.tlsPort else { throw Self.noEndpoint(config.name) }
        guard EngineTLS.exists(files) else {
            throw MachineError("the TLS certificates of \(config.name) are missing from \(files.tls.path)",
                               hint: "`machine regenerate-certs\(MachineName.commandSuffix(config.name))` makes new ones")
        }
        return [("DOCKER_HOST", "tcp://127.0.0.1:\(port)"), ("DOCKER_CERT_PATH", files.tls.path), ("DOCKER_TLS_VERIFY", "1")]
    }

    static func noEndpoint(_ name: String) -> MachineError {
        MachineError("\(name) has no TLS endpoint", hint: "`machine up --tls\(MachineName.commandSuffix(name))` adds one")
    }

    /// Uploads the TLS files to a running machine (restarting dockerd if they changed) and
    /// has its agent forward the endpoint. A stopped machine gets them through the seed.
    private func push(_ machine: LockedMachine) throws(MachineError) {
        guard try runtime.hypervisor.state(machine.name) == .running else { return }
        // The engine it runs: pushing certificates is no time to change engines.
        let bundle: EngineBundle
        if let running = BootRecord.last(machine.files)?.builds?.engine { bundle = running } else {
            bundle = try lifecycle.builds.engine(for: try machine.config(), suite: try lifecycle.suite(machine), quiet: true)
        }
        lifecycle.progress("restarting the engine of \(machine.name) with its TLS certificates")
        _ = try runtime.provision(machine, engine: bundle)
        AgentProcess(name: machine.name, files: machine.files).reload()
        try runtime.waitForEngine(machine, timeout: 180)
    }
}
