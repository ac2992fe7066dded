import FoundationEssentials
import HostOS

/// What the agent of a machine on this host serves with, made without libvirt in this
/// process (LibvirtHelper says why): its guest, its QEMU's UDP forwards, the watch of its
/// boot and its trusted config, the last three asking libvirt through the helper.
public struct LocalAgentMachine: Sendable {
    public let name: String
    public let files: MachineFiles
    public let guest: GuestSSH
    public let udp: QEMUForwards
    public let watch: DomainWatch
    let helper: LibvirtHelper

    /// nil when `uri` is another host's daemon, or no QEMU of the machine's domain runs here
    /// (then the agent asks libvirt itself, as for a remote machine).
    public init?(name: String, uri: String, paths: Paths, executable: String) throws(MachineError) {
        guard let watch = DomainWatch.throughHelper(uri: uri, paths: paths, name: name, executable: executable) else { return nil }
        let store = MachineStore(paths: paths)
        self.name = name
        files = store.files(name)
        // The port as config.json says, as `Machines.guest` takes it: a port a guest rewrote
        // reaches no sshd with the machine's host key.
        guest = GuestSSH(name: name, port: try store.config(name).sshPort, files: files)
        helper = LibvirtHelper(executable: executable, uri: uri, name: name)
        udp = QEMUForwards(uri: uri, paths: paths, name: name, helper: helper)
        self.watch = watch
    }

    /// The config as machine wrote it (`Machines.trustedConfig`), checked against its copy in
    /// libvirt by the helper.
    public func trustedConfig() throws(MachineError) -> MachineConfig {
        let printed = try helper.ask(.config, timeout: LibvirtHelper.actTimeout)
        do {
            return try MachineConfig.decode(Data(printed.utf8))
        } catch {
            throw MachineError("cannot read \(name)'s config from the libvirt helper: \(error)")
        }
    }
}
