import FoundationEssentials
import MachineCore
import HostOS
import SSH
#if canImport(Glibc)
import Glibc  // forwards are descriptors: non-blocking sockets, the wake pipe, the bound address of a listener
#endif

/// Published container ports and manual forwards: listeners opened and closed to match.
extension Agent {
    func startForwarding() {
        guard pipe(&wakePipe) == 0 else { return }
        _ = fcntl(wakePipe[0], F_SETFL, O_NONBLOCK)
        _ = fcntl(wakePipe[1], F_SETFL, O_NONBLOCK)
        reloadConfig()
        // Manual forwards and the TLS endpoint need no word from the engine: they open now, so
        // they are there when `machine start` returns (connections wait for the session).
        reconcile()
        let mailbox = Mailbox(wakeFD: wakePipe[1])
        self.mailbox = mailbox
        let changed = containersChanged
        EngineWatcher(guest: guest, report: { mailbox.put($0); changed?() }, log: log).start()
    }

    func reloadConfig() {
        guard let config = forwarding?.loadConfig() else { return }
        publishAddress = config.publishAddress
        sleeper?.setIdleAfter(config.idleSleepSeconds)
        sshPort = config.sshPort
        manualForwards = config.ports.map {
            PortForward(kind: .manual, proto: $0.proto, hostAddress: config.publishAddress, hostPort: $0.hostPort, guestPort: $0.guestPort)
        }
        // The engine's TLS endpoint (`--tls`): dockerd listens on the guest's loopback, and the
        // host end stays on loopback too, whatever `--publish-address` says for containers
        // (`machine env --tls` names 127.0.0.1).
        if let tlsPort = config.tlsPort {
            manualForwards.append(PortForward(kind: .engineTLS, hostAddress: "127.0.0.1", hostPort: tlsPort,
                                              guestPort: GuestContract.engineTLSPort))
        }
    }

    /// Takes what the watcher reported and what SIGUSR1 asked for; reconciles the listeners
    /// when anything changed, and every few seconds while some forward could not open.
    func updateForwards() {
        var changed = false
        if SignalFlags.takeReload() {
            reloadConfig()
            log("manual forwards reloaded: \(manualForwards.map { "\($0.hostPort):\($0.guestPort)" }.joined(separator: ", "))")
            changed = true
        }
        if wakePipe[0] >= 0 {
            var drain = [UInt8](repeating: 0, count: 64)
            while read(wakePipe[0], &drain, drain.count) > 0 {}
        }
        if let containers = mailbox?.take() {
            automaticForwards = PortForwards.automatic(containers: containers, publishAddress: publishAddress, sshPort: sshPort)
            changed = true
        }
        let retry = statuses.contains { $0.state.hasPrefix("error") } && Date().timeIntervalSince(lastReconcile) > 3
        if changed || retry { reconcile() }
    }

    func reconcile() {
        lastReconcile = Date()
        let plan = ForwardingPlan(manual: manualForwards, automatic: automaticForwards, sshPort: sshPort,
                                  udpRefusal: qemuForwards == nil ? "UDP is forwarded by QEMU, which runs on the remote libvirt host" : nil)
        let wanted = plan.wanted
        var next = plan.refused
        for (key, entry) in forwardListeners where wanted[key] != entry.forward {
            entry.listener.close()
            forwardListeners[key] = nil
            log("forward \(entry.forward.hostAddress):\(entry.forward.hostPort) closed")
        }
        for (key, forward) in udpForwards where wanted[key] != forward {
            do {
                try qemuForwards?.remove(hostAddress: forward.hostAddress, hostPort: forward.hostPort)
                log("forward \(forward.hostAddress):\(forward.hostPort)/udp closed")
            } catch {
                log("forward \(forward.hostAddress):\(forward.hostPort)/udp: \(error.message)")
            }
            udpForwards[key] = nil
        }
        for forward in plan.open where forward.proto == "udp" {
            next.append(ForwardStatus(forward: forward, state: openUDP(forward)))
        }
        for forward in plan.open where forward.proto == "tcp" {
            if forwardListeners[forward.hostKey] != nil {
                next.append(ForwardStatus(forward: forward, state: "forwarding"))
                continue
            }
            switch LocalSocket.listenTCP(address: forward.hostAddress, port: forward.hostPort) {
            case .success(let fd):
                let listener = Listener(fd: fd, name: "\(forward.hostAddress):\(forward.hostPort)",
                                        target: .tcp(host: forward.guestAddress, port: forward.guestPort))
                forwardListeners[forward.hostKey] = (listener, forward)
                loggedFailures.remove(forward.hostKey)
                log("forward \(forward.hostAddress):\(forward.hostPort) -> guest \(forward.guestAddress):\(forward.guestPort)"
                    + " (\(forward.kind == .automatic ? "container " : "")\(forward.origin))")
                next.append(ForwardStatus(forward: forward, state: "forwarding"))
            case .failure(let error):
                var reason = String(cString: strerror(error.code.rawValue))
                if error.code == .EADDRINUSE {
                    reason = "\(forward.hostAddress):\(forward.hostPort) is already in use"
                        + (LocalSocket.holder(ofTCPPort: forward.hostPort).map { " by \($0)" } ?? " on the host")
                }
                if loggedFailures.insert(forward.hostKey).inserted {
                    log("cannot forward \(forward.hostAddress):\(forward.hostPort): \(reason)")
                }
                next.append(ForwardStatus(forward: forward, state: "error: \(reason)"))
            }
        }
        next.sort { ($0.forward.hostPort, $0.forward.proto) < ($1.forward.hostPort, $1.forward.proto) }
        if next != statuses, let forwarding {
            PortForwards.writeStatus(next, to: forwarding.statusFile)
        }
        statuses = next
    }

    /// Has QEMU forward a UDP port (unless it does already); how the forward stands.
    func openUDP(_ forward: PortForward) -> String {
        guard udpForwards[forward.hostKey] == nil, let qemuForwards else { return "forwarding" }
        do {
            try qemuForwards.add(hostAddress: forward.hostAddress, hostPort: forward.hostPort,
                                 guestAddress: forward.guestAddress, guestPort: forward.guestPort)
        } catch {
            if loggedFailures.insert(forward.hostKey).inserted {
                log("cannot forward \(forward.hostAddress):\(forward.hostPort)/udp: \(error.message)")
            }
            return "error: \(error.message)"
        }
        udpForwards[forward.hostKey] = forward
        loggedFailures.remove(forward.hostKey)
        log("forward \(forward.hostAddress):\(forward.hostPort)/udp -> guest \(QEMUForwards.guestTarget(forward.guestAddress)):\(forward.guestPort)"
            + " by QEMU (\(forward.kind == .automatic ? "container " : "")\(forward.origin))")
        return "forwarding"
    }

    func socketPath(of listener: Listener) -> String {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener.fd, $0, &length) }
        }
        return withUnsafeBytes(of: &address.sun_path) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
