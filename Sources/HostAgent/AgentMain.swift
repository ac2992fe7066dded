import Foundation
import HostOS
import MachineCore
#if canImport(Glibc)
import Glibc
#endif

/// The host agent's main, run by `machine agent NAME`; `AgentProcess` (MachineCore) starts
/// and stops that process.
public enum AgentMain {
    /// The body of `machine agent NAME`: takes the agent lock (exits quietly if another agent
    /// holds it), serves the engine socket, runs until stopped.
    /// `loadConfig` reads the machine's config whenever the manual forwards are reloaded.
    public static func serve(_ process: AgentProcess, guest: GuestSSH, loadConfig: @escaping () throws(MachineError) -> MachineConfig) throws(MachineError) {
        Agent.installSignalHandlers()
        let lockFD = open(process.files.agentLock.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw MachineError("cannot open \(process.files.agentLock.path): \(String(cString: strerror(errno)))") }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            AgentProcess.log("another agent serves \(process.name) already; exiting")
            return
        }
        try AtomicFile.save(Data("\(getpid())\n".utf8), to: process.files.agentPid, mode: 0o600)
        AgentProcess.log("agent \(getpid()) for \(process.name) starting")
        let agent = Agent(guest: guest, log: AgentProcess.log)
        try agent.listen(unixSocket: process.files.dockerSocket.path, name: "docker.sock", target: .unixSocket(AgentProcess.guestDockerSocket))
        agent.enablePortForwarding(statusFile: process.files.portsStatus) {
            do throws(MachineError) {
                return try loadConfig()
            } catch {
                AgentProcess.log("kept the forwards as they were: \(error.description)")
                return nil
            }
        }
        if let config = try? loadConfig() {
            ShareEventForwarder(guest: agent.guest, shares: config.mounts, machineHome: Paths().home.path, log: AgentProcess.log).start()
        }
        agent.run()
        unlink(process.files.agentPid.path)
        AgentProcess.log("agent \(getpid()) stopped")
        close(lockFD)
    }
}
