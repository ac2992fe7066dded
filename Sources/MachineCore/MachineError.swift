/// The one error type the command line shows: what went wrong and what to do about it.
public struct MachineError: Error, CustomStringConvertible, Sendable {
    public let message: String
    /// What the user can run or change; printed as "hint: ...".
    public let hint: String?
    /// Process exit status for this failure.
    public let exitCode: Int32

    public init(_ message: String, hint: String? = nil, exitCode: Int32 = 1) {
        self.message = message
        self.hint = hint
        self.exitCode = exitCode
    }

    public var description: String {
        hint.map { "\(message)\nhint: \($0)" } ?? message
    }
}
