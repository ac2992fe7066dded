import FoundationEssentials
import MachineCore
import SSH
import HostOS
#if canImport(Glibc)
import Glibc  // accept(2) and the socket options of each client (non-blocking, close-on-exec, TCP_NODELAY)
#endif

/// What the agent's loop waits on, and the clients it accepts.
extension Agent {
    var allListeners: [Listener] { listeners + forwardListeners.values.map(\.listener) }

    func pollSet() -> [pollfd] {
        var fds: [pollfd] = allListeners.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        if wakePipe[0] >= 0 { fds.append(pollfd(fd: wakePipe[0], events: Int16(POLLIN), revents: 0)) }
        if let session {
            let blocked = session.blockedDirections
            var events = Int16(POLLIN)
            if blocked.outbound { events |= Int16(POLLOUT) }
            fds.append(pollfd(fd: session.socketDescriptor, events: events, revents: 0))
        }
        for connection in connections where connection.channel != nil {
            var events: Int16 = 0
            if connection.wantsInput { events |= Int16(POLLIN) }
            if !connection.toClient.isEmpty { events |= Int16(POLLOUT) }
            if events != 0 { fds.append(pollfd(fd: connection.client, events: events, revents: 0)) }
        }
        return fds
    }

    /// Which of the round's reads can find anything, from what poll() reported: the
    /// session's socket, and each client polled for input. Reads that could only fail with
    /// EAGAIN are skipped (a warm request made 12 of them among its 21 system calls). A poll
    /// that timed out has the session's channels read once anyway, as they were before these
    /// marks: a second's wait at most for anything their reasoning missed.
    func noteInput(_ readable: Set<Int32>, timedOut: Bool) {
        if let session, timedOut || readable.contains(session.socketDescriptor) {
            session.socketTurnedReadable()
        }
        for connection in connections where connection.channel != nil {
            // One not polled for input (`pollSet`) may have some all the same.
            connection.clientMayHaveInput = !connection.wantsInput || readable.contains(connection.client)
        }
    }

    func acceptClients(on readable: Set<Int32>) -> Bool {
        var accepted = false
        for listener in allListeners where listener.fd >= 0 && readable.contains(listener.fd) {
            while true {
                let fd = accept(listener.fd, nil, nil)
                if fd < 0 { break }
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                if case .tcp = listener.target {
                    // Small request/response traffic must not wait for Nagle (OpenSSH does the same).
                    var one: Int32 = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                }
                sleeper?.clientArrived(listener.name)
                waiting.append(Connection(client: fd, listener: listener))
                accepted = true
            }
        }
        return accepted
    }
}
