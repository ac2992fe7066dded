import FoundationEssentials

/// The engine's TLS endpoint (`--tls`, `machine env --tls`, `machine regenerate-certs`).
extension Machines {
    /// Gives the machine a TLS endpoint if it has none: a host port and new certificates. A
    /// running machine gets them at once (dockerd restarts); returns true if anything changed.
    @discardableResult
    public func enableTLS(_ name: String) throws(MachineError) -> Bool {
        let machine = try lock(name)
        var config = try machine.config()
        guard config.tlsPort == nil else { return false }
        try EngineTLS.make(machine.files, name: name)
        config.tlsPort = try MachineStore.freeLoopbackPort()
        try machine.save(config)
        try pushTLS(machine)
        return true
    }

    /// New certificates in place of the old (a new CA, so the old client certificate is
    /// refused from now on); a running machine's engine restarts with them.
    public func regenerateCertificates(_ name: String) throws(MachineError) {
        let machine = try lock(name)
        guard try machine.config().tlsPort != nil else { throw Self.noTLSEndpoint(name) }
        try EngineTLS.make(machine.files, name: name)
        try pushTLS(machine)
    }

    /// DOCKER_HOST, DOCKER_CERT_PATH and DOCKER_TLS_VERIFY for the machine's TLS endpoint.
    public func tlsEnvironment(_ name: String) throws(MachineError) -> [(String, String)] {
        let config = try store.config(name)
        guard let port = config.tlsPort else { throw Self.noTLSEndpoint(name) }
        guard EngineTLS.exists(store.files(name)) else {
            throw MachineError("the TLS certificates of \(name) are missing from \(store.files(name).tls.path)",
                               hint: "`machine regenerate-certs\(MachineName.commandSuffix(name))` makes new ones")
        }
        return [("DOCKER_HOST", "tcp://127.0.0.1:\(port)"), ("DOCKER_CERT_PATH", store.files(name).tls.path), ("DOCKER_TLS_VERIFY", "1")]
    }

    static func noTLSEndpoint(_ name: String) -> MachineError {
        MachineError("\(name) has no TLS endpoint", hint: "`machine up --tls\(MachineName.commandSuffix(name))` adds one")
    }

    /// Uploads the TLS files to a running machine (restarting dockerd if they changed) and
    /// has its agent forward the endpoint. A stopped machine gets them through the seed.
    func pushTLS(_ machine: LockedMachine) throws(MachineError) {
        guard try hypervisor.state(machine.name) == .running else { return }
        // The engine it runs: pushing certificates is no time to change engines.
        let bundle: EngineBundle
        if let running = lastBootBuilds(machine.name)?.engine { bundle = running } else { bundle = try buildSelection.engine(for: try machine.config(), suite: try lifecycle.suite(machine), quiet: true) }
        progress("restarting the engine of \(machine.name) with its TLS certificates")
        _ = try runtime.provision(machine, engine: bundle)
        AgentProcess(name: machine.name, files: machine.files).reload()
        try runtime.waitForEngine(machine, timeout: 180)
    }
}
