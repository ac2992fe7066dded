import FoundationEssentials
import HostOS

// HostOS as MachineCore calls it: the same operations, with failures turned into
// MachineErrors that carry a hint for the common ones (see MachineError.init(_: SystemError)).

extension AtomicFile {
    public static func save(_ data: Data, to url: URL, mode: UInt32 = 0o644) throws(MachineError) {
        try onHost { () throws(SystemError) in try write(data, to: url, mode: mode) }
    }
}

extension Subprocess {
    /// `run`, for a program that may fail: its status and output.
    public static func outcome(of argv: [String], timeout: Double = 120) throws(MachineError) -> Result {
        try onHost { () throws(SystemError) in try run(argv, timeout: timeout) }
    }

    /// `check`: the output of a program that must succeed.
    @discardableResult
    public static func output(of argv: [String], timeout: Double = 120, what: String) throws(MachineError) -> String {
        try onHost { () throws(SystemError) in try check(argv, timeout: timeout, what: what) }
    }
}

extension LocalSocket {
    public static func listen(unixSocket path: String) throws(MachineError) -> Int32 {
        try onHost { () throws(SystemError) in try listenUnix(path) }
    }
}
