import HostOS

/// An exclusive per-machine lock (on the machine's `lock` file), held by every command that
/// changes a machine, so two commands at once cannot corrupt it. Released on deinit, and by
/// the kernel if the process dies.
public final class MachineLock {
    private let lock: FileLock

    public init(files: MachineFiles, name: String) throws(MachineError) {
        guard let lock = try onHost({ () throws(SystemError) in try FileLock.tryExclusive(files.lock.path) }) else {
            throw MachineError(
                "another machine command is working on \"\(name)\" right now",
                hint: "wait for it to finish, then run this again")
        }
        self.lock = lock
    }
}
