import HostOS
#if canImport(Glibc)
import Glibc  // errno's names, to give the common host failures their hints
#endif

/// The one error type the command line shows: what went wrong and what to do about it, with
/// a kind callers and tests can match on, and the lower-level error it came from.
public struct MachineError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure it is; the command line picks the exit status from it.
    public enum Kind: Sendable, Equatable {
        /// Bad input on the command line (exit 64).
        case usage
        /// A host program or service this needs is not installed (exit 69).
        case unavailable
        /// No machine, image or file of that name.
        case notFound
        /// The libvirt domain of that name belongs to another home.
        case foreignDomain
        /// config.json is not what machine last wrote.
        case configChanged
        /// A system call or helper program on the host failed.
        case host
        /// Anything else.
        case failed
    }

    public let message: String
    /// What the user can run or change; printed as "hint: ...".
    public let hint: String?
    public let kind: Kind
    /// The error this one reports, when it comes from a lower layer.
    public let cause: (any Error & Sendable)?

    public init(_ message: String, hint: String? = nil, kind: Kind = .failed, cause: (any Error & Sendable)? = nil) {
        self.message = message
        self.hint = hint
        self.kind = kind
        self.cause = cause
    }

    /// A host failure, with the hint a user needs for the common ones.
    public init(_ error: SystemError) {
        let hint: String? = switch error.code {
        case ENOSPC: "the disk is full: free some space and try again"
        case ENOENT where error.operation.hasPrefix("run "): "install it (scripts/host-setup.sh lists the host packages)"
        case EEXIST: "move it away"
        case ELOOP: "give the real path instead"
        default: nil
        }
        self.init(error.description, hint: hint, kind: .host, cause: error)
    }

    public var description: String {
        hint.map { "\(message)\nhint: \($0)" } ?? message
    }
}

/// Runs host work (HostOS), turning its failure into a MachineError with a hint.
public func onHost<T>(_ body: () throws(SystemError) -> T) throws(MachineError) -> T {
    do {
        return try body()
    } catch {
        throw MachineError(error)
    }
}
