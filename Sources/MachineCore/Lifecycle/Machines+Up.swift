import FoundationEssentials

/// `machine up`: create the machine if it does not exist, else apply what changed, then start it.
extension Machines {
    public typealias UpRequest = MachineUpRequest

    /// Creates the machine, or applies the request's changes to the one that exists (each
    /// kept in its config; what needs a boot is said to need one), then starts it.
    public func up(_ name: String, _ request: UpRequest) throws(MachineError) -> MachineUpOutcome {
        let created = !store.exists(name)
        let restart = "`machine restart\(MachineName.commandSuffix(name))`"
        var engineChanged = false
        if created {
            try create(try request.newConfig())
            progress("created \(name)")
        } else {
            if let changeShares = request.changeShares, try updateShares(name, changeShares), try hypervisor.state(name) != .stopped {
                progress("note: the new shares of \(name) take effect at its next boot: \(restart)")
            }
            let shape = request.shape
            if shape.iso != nil {
                progress("note: \(name) exists; --iso applies only when a machine is created (`machine rm \(name)` removes it, data disk included)")
            }
            if let suite = shape.suite, case let running = runningSuite(name), suite != running {
                progress("note: \(name) exists and runs Debian \(running); `machine upgrade --suite \(suite)\(MachineName.commandSuffix(name))` moves it to \(suite), going back if the new engine fails")
            }
            if try updateShape(name, accel: shape.accel, cpus: shape.cpus, memoryMiB: shape.memoryMiB, diskGiB: shape.diskGiB),
               try hypervisor.state(name) == .running {
                progress("note: the new --accel, --cpus, --memory or --disk of \(name) apply at its next boot: \(restart)")
            }
            if let address = shape.publishAddress {
                try PortForwards.validateAddress(address)
                try updateForwarding(name) { $0.publishAddress = address }
            }
            if let hostAccess = shape.hostAccess, try updateHostAccess(name, hostAccess), try hypervisor.state(name) != .stopped {
                progress("note: --host-access \(hostAccess ? "on" : "off") of \(name) applies at its next boot: \(restart)")
            }
            if let choice = shape.platforms {
                let platforms = choice.platforms
                switch try updatePlatforms(name, platforms) {
                case .applied(let said): progress("--platforms \(EmulatedPlatforms.describe(platforms)): \(said)")
                case .nextBoot(let why?): progress("note: --platforms \(EmulatedPlatforms.describe(platforms)) of \(name) applies at its next boot (\(why)): \(restart)")
                case .nextBoot(nil), .unchanged: break
                }
            }
            if let idleSleep = shape.idleSleep { try updateIdleSleep(name, idleSleep) }
            if shape.tls, try enableTLS(name) {
                progress("\(name) has a TLS endpoint now: `machine env --tls\(MachineName.commandSuffix(name))`")
            }
            if let changeEngine = request.changeEngine {
                engineChanged = try changeConfig(name) { (config: inout MachineConfig) throws(MachineError) in config.engine = try changeEngine(config.engine) }
            }
        }
        do {
            // New engine settings reach an engine that is up now, not at its next start.
            return MachineUpOutcome(created: created, started: try start(name, provision: engineChanged))
        } catch {
            if created {
                progress("note: \(name) was created but is not up; once the error below is dealt with, `machine up\(MachineName.commandSuffix(name))` completes it (`machine rm \(name)` removes it)")
            }
            throw error
        }
    }
}
