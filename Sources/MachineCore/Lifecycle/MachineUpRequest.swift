/// What `up` asks of a machine: the config of a new one, and the changes to one that exists
/// (nil or empty: leave that alone).
public struct MachineUpRequest {
    /// The shape asked for: a new machine's, and for one that exists, the changes to it
    /// (each nil or false: leave that alone; its ISO applies only at create).
    public var shape: MachineShape
    /// Made only when the machine does not exist yet.
    public var newConfig: () throws(MachineError) -> MachineConfig
    public var changeShares: ((inout MachineConfig) throws(MachineError) -> Void)?
    public var changeEngine: ((EngineSettings) throws(MachineError) -> EngineSettings)?

    public init(shape: MachineShape, newConfig: @escaping () throws(MachineError) -> MachineConfig,
                changeShares: ((inout MachineConfig) throws(MachineError) -> Void)? = nil,
                changeEngine: ((EngineSettings) throws(MachineError) -> EngineSettings)? = nil) {
        self.shape = shape
        self.newConfig = newConfig
        self.changeShares = changeShares
        self.changeEngine = changeEngine
    }
}

public struct MachineUpOutcome: Sendable {
    public let created: Bool
    public let started: Machines.Started
}
