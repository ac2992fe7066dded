import FoundationEssentials
import HostOS
import Virt

/// Booting a machine's domain: the image, the seed, the accelerator (with the fall back from
/// KVM to TCG), and the wait for sshd.
extension LibvirtRuntime {
    /// Defines and boots the domain, waits for sshd and pins the host key. A guest that KVM
    /// (chosen by `auto`) stops, crashes or leaves silent is booted again under TCG, and TCG is
    /// remembered for this host boot.
    func boot(_ machine: LockedMachine, builds: MachineBuilds) throws(MachineError) -> Double {
        let name = machine.name, files = machine.files
        let config = try machine.config()
        let image = builds.image, engine = builds.engine
        // A mark an agent left asleep is of a boot that is over.
        IdleSleep.clearMark(files)
        // The built image mounts the engine's own disk; an ISO of the user's gets none.
        let engineDisk = image == nil ? nil : engine.disk
        let volumes = remoteVolumes(name)
        if volumes == nil {
            let diskBytes = try store.checkDataDisk(files)
            if diskBytes < Int64(config.diskGiB) << 30 {
                progress("growing the data disk of \(name) to \(config.diskGiB) GiB")
                try store.growDataDisk(files, to: config.diskGiB)
            }
        }
        try Shares.verifyBeforeBoot(config.mounts, machine: name)
        let shares = try Shares.devices(config.mounts, type: config.mountType, systemDaemon: hypervisor.isSystemDaemon,
                                            machineFolder: files.folder)
        // A measurement of the last boot's disk may be of a smaller one (`machine set --disk`).
        try? FileManager.default.removeItem(at: files.dataDiskUsage)
        // The agent's split sessions are made anew at each boot (QEMU makes the ports' sockets,
        // the input ports are chosen now); stale ones would send the agent where nobody serves.
        var agentInputPorts: [SSHPortLink.Role: Int] = [:]
        for role in SSHPortLink.Role.allCases {
            try? FileManager.default.removeItem(at: files.agentLinkSocket(role))
            try? FileManager.default.removeItem(at: files.agentLinkInputPort(role))
            // Their ends would be on the remote host: a remote machine's agent uses sshd's port.
            guard image?.serves(role) == true && volumes == nil else { continue }
            let port = try Self.freePort(avoiding: [config.sshPort] + agentInputPorts.values, MachineStore.freeLoopbackPort)
            try AtomicFile.save(Data("\(port)\n".utf8), to: files.agentLinkInputPort(role), mode: 0o600)
            agentInputPorts[role] = port
        }
        // The agent's resolver, where the guest sends its DNS: a port on this host's loopback,
        // so not for a machine on a remote libvirt host (QEMU would deliver there).
        try? FileManager.default.removeItem(at: files.hostResolverPort)
        var resolverPort: Int?
        if image?.servesHostNetwork == true && volumes == nil {
            let port = try Self.freePort(avoiding: [config.sshPort] + agentInputPorts.values, MachineStore.freeLoopbackDNSPort)
            try AtomicFile.save(Data("\(port)\n".utf8), to: files.hostResolverPort, mode: 0o600)
            resolverPort = port
        }
        try store.writeSeed(config, files: files, shares: shares, hidden: Shares.hiddenGuestPaths(config.mounts, machineHome: paths.home.path),
                            agentInputPorts: SSHPortLink.Role.allCases.compactMap { agentInputPorts[$0] }, hostResolverPort: resolverPort)
        var placement: RemotePlacement?
        if let volumes {
            guard let image else {
                throw MachineError("\(name) has no built image to boot on \(volumes.host)", hint: "--iso is not offered on a remote libvirt host")
            }
            placement = try RemotePlacement(volumes: volumes, config: config, files: files, image: image, engine: engine, engineDisk: engineDisk)
        }
        let plan = BootPlan(image: image, shares: shares, agentInputPorts: agentInputPorts, engineDisk: engineDisk?.path, remote: placement)
        try BootRecord(config, builds: builds, shares: shares).save(files)
        let (accelerator, notice) = try chooseAccelerator(config, image: image)
        if let notice {
            progress(notice)
            if accelerator == .tcg && hypervisor.isSystemDaemon && HostCheck.systemLibvirtdSeesKVM() == true {
                progress("note: libvirtd can open /dev/kvm, which does not run guests here, so it re-probes QEMU at every start (tens of seconds); `\(HostCheck.setupCommand)` (as root) restarts it without /dev/kvm")
            }
        }
        let uptime: Double
        do {
            uptime = try bootOnce(machine, plan: plan, accelerator: accelerator)
        } catch let failure where accelerator == .kvm && config.accel == "auto" && failure.isGuestFailure {
            if let remote {
                progress("KVM could not run \(name) on \(remote.host): \(failure.reason); booting it again with QEMU's TCG emulation (slower)")
            } else {
                progress("KVM could not run \(name): \(failure.reason); booting it again with QEMU's TCG emulation (slower), which this host uses from now on")
                AcceleratorProbe.rememberFailure(in: paths.kvmFailedVerdict)
            }
            do {
                uptime = try bootOnce(machine, plan: plan, accelerator: .tcg)
            } catch {
                throw error.machineError
            }
        } catch {
            throw error.machineError
        }
        return uptime
    }

    /// A free port from `pick` that is none of `taken`: the ports this boot already chose are
    /// free too until QEMU binds them.
    static func freePort(avoiding taken: [Int], _ pick: () throws(MachineError) -> Int) throws(MachineError) -> Int {
        var port = try pick()
        while taken.contains(port) { port = try pick() }
        return port
    }

    /// What a boot attaches, decided once for both tries (KVM, then TCG).
    struct BootPlan {
        let image: GuestImage?
        let shares: [SharedFolder]
        let agentInputPorts: [SSHPortLink.Role: Int]
        let engineDisk: String?
        /// Where its files are on a remote libvirt host (nil: here).
        let remote: RemotePlacement?
    }

    /// KVM or TCG: probed here for this host's daemon, asked of a remote one's libvirt.
    func chooseAccelerator(_ config: MachineConfig, image: GuestImage?) throws(MachineError) -> (Accelerator, notice: String?) {
        guard let remote else {
            return try AcceleratorProbe.choose(config.accel, verdictFile: paths.kvmFailedVerdict, kernel: image?.kernel)
        }
        let capabilities: String
        do {
            capabilities = try hypervisor.connection.capabilities()
        } catch {
            throw MachineError("cannot ask libvirt on \(remote.host) what it can run: \(error.message)")
        }
        return try AcceleratorProbe.chooseRemote(config.accel, capabilities: capabilities, host: remote.host)
    }

    /// One boot. On a remote libvirt host the machine's SSH port was chosen free here, not
    /// there: one QEMU cannot forward (taken by another user's machine, say) is replaced by
    /// another, kept in the machine's config.
    func bootOnce(_ machine: LockedMachine, plan: BootPlan, accelerator: Accelerator) throws(BootWatcher.Failure) -> Double {
        var tries = 0
        while true {
            let config: MachineConfig
            do {
                config = try machine.config()
            } catch {
                throw .other(error)
            }
            do {
                return try bootOnce(config, files: machine.files, plan: plan, accelerator: accelerator)
            } catch .other(let error) where remote != nil && error.message.contains("host forwarding rule") && tries < 3 {
                tries += 1
                var moved = config
                moved.sshPort = Int.random(in: 20000...60999)
                progress("port \(config.sshPort) is taken on \(remote?.host ?? ""); forwarding \(moved.sshPort) to \(config.name)'s sshd instead")
                do {
                    try machine.save(moved)
                } catch {
                    throw .other(error)
                }
            }
        }
    }

    func bootOnce(_ config: MachineConfig, files: MachineFiles, plan: BootPlan, accelerator: Accelerator) throws(BootWatcher.Failure) -> Double {
        let name = config.name
        var mirror: ConsoleMirror?
        defer { mirror?.stop() }
        do {
            // The console log of this boot only, so the waits below never read an old boot.
            try? FileManager.default.removeItem(at: files.consoleLog)
            progress("starting \(name) (\(accelerator.rawValue), \(config.cpus) CPUs, \(config.memoryMiB) MiB)\(remote.map { " on \($0.host)" } ?? "")")
            try startOwnVirtiofsd(plan.shares, files: files)
            var definition = hypervisor.definition(config: config, files: files, image: plan.image, accelerator: accelerator,
                                                   shares: plan.shares, agentInputPorts: plan.agentInputPorts, engineDisk: plan.engineDisk)
            if let placement = plan.remote {
                definition = try placement.applied(to: definition)
                mirror = ConsoleMirror(volumes: placement.volumes, destination: files.consoleLog)
                mirror?.start()
            }
            try hypervisor.start(definition, name: name)
        } catch {
            UserVirtiofsd.stopAll(pidsFile: files.virtiofsdPids)
            throw .other(error)
        }
        let uptime = try BootWatcher.waitForSSH(files: files, name: name, silentLimit: accelerator == .kvm ? 15 : nil,
                                                status: statusReader(name))
        do {
            _ = try BootWatcher.pinHostKey(files: files, config: config)
        } catch {
            throw .other(error)
        }
        return uptime
    }

    /// Starts the virtiofsd of each share that machine serves itself (session machines), after
    /// ending any an earlier try left (QEMU never connected, or a KVM try that died); a
    /// virtiofsd QEMU connected to ends with it.
    func startOwnVirtiofsd(_ shares: [SharedFolder], files: MachineFiles) throws(MachineError) {
        UserVirtiofsd.stopAll(pidsFile: files.virtiofsdPids)
        try? FileManager.default.removeItem(at: files.virtiofsdLog)
        var pids = ""
        for folder in shares {
            guard case let .userVirtiofs(binary, socket) = folder.transport else { continue }
            let pid = try UserVirtiofsd.start(binary: binary, folder: folder.share.hostPath, socket: socket, log: files.virtiofsdLog.path)
            pids += UserVirtiofsd.pidsLine(pid, tag: folder.tag)
            try AtomicFile.save(Data(pids.utf8), to: files.virtiofsdPids, mode: 0o600)
        }
    }
}
