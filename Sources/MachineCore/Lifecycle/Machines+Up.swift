import Foundation

/// `machine up`: create the machine if it does not exist, else apply what changed, then start it.
extension Machines {
    /// What `up` asks of a machine: the config of a new one, and the changes to one that exists
    /// (nil or empty: leave that alone).
    public struct UpRequest {
        /// Made only when the machine does not exist yet.
        public var newConfig: () throws(MachineError) -> MachineConfig
        public var changeShares: ((inout MachineConfig) throws(MachineError) -> Void)?
        public var accel: String?
        public var cpus: Int?
        public var memoryMiB: Int?
        /// A bigger data disk (it only grows).
        public var diskGiB: Int?
        /// Add the engine's TLS endpoint if it has none.
        public var tls: Bool
        public var publishAddress: String?
        public var changeEngine: ((EngineSettings) throws(MachineError) -> EngineSettings)?
        /// Options given that apply only when a machine is created (e.g. "--iso").
        public var createOnlyOptions: [String]

        public init(newConfig: @escaping () throws(MachineError) -> MachineConfig,
                    changeShares: ((inout MachineConfig) throws(MachineError) -> Void)? = nil,
                    accel: String? = nil, cpus: Int? = nil, memoryMiB: Int? = nil, diskGiB: Int? = nil, tls: Bool = false, publishAddress: String? = nil,
                    changeEngine: ((EngineSettings) throws(MachineError) -> EngineSettings)? = nil, createOnlyOptions: [String] = []) {
            self.newConfig = newConfig
            self.changeShares = changeShares
            self.accel = accel
            self.cpus = cpus
            self.memoryMiB = memoryMiB
            self.diskGiB = diskGiB
            self.tls = tls
            self.publishAddress = publishAddress
            self.changeEngine = changeEngine
            self.createOnlyOptions = createOnlyOptions
        }
    }

    public struct UpOutcome: Sendable {
        public let created: Bool
        public let started: Started
    }

    /// Creates the machine, or applies the request's changes to the one that exists (each
    /// kept in its config; what needs a boot is said to need one), then starts it.
    public func up(_ name: String, _ request: UpRequest) throws(MachineError) -> UpOutcome {
        let created = !store.exists(name)
        let restart = "`machine restart\(name == MachineName.default ? "" : " " + name)`"
        if created {
            try create(try request.newConfig())
            progress("created \(name)")
        } else {
            if let changeShares = request.changeShares, try updateShares(name, changeShares), try hypervisor.state(name) != .stopped {
                progress("note: the new shares of \(name) take effect at its next boot: \(restart)")
            }
            if !request.createOnlyOptions.isEmpty {
                progress("note: \(name) exists; \(request.createOnlyOptions.joined(separator: " and ")) apply only when a machine is created (`machine rm \(name)` removes it, data disk included)")
            }
            if try updateShape(name, accel: request.accel, cpus: request.cpus, memoryMiB: request.memoryMiB, diskGiB: request.diskGiB),
               try hypervisor.state(name) == .running {
                progress("note: the new --accel, --cpus, --memory or --disk of \(name) apply at its next boot: \(restart)")
            }
            if let address = request.publishAddress {
                try PortForwards.validateAddress(address)
                try updateForwarding(name) { $0.publishAddress = address }
            }
            if request.tls, try enableTLS(name) {
                progress("\(name) has a TLS endpoint now: `machine env --tls\(name == MachineName.default ? "" : " " + name)`")
            }
            if let changeEngine = request.changeEngine {
                try changeConfig(name) { (config: inout MachineConfig) throws(MachineError) in config.engine = try changeEngine(config.engine) }
            }
        }
        do {
            return UpOutcome(created: created, started: try start(name))
        } catch {
            if created {
                progress("note: \(name) was created but is not up; once the error below is dealt with, `machine up\(name == MachineName.default ? "" : " " + name)` completes it (`machine rm \(name)` removes it)")
            }
            throw error
        }
    }
}
