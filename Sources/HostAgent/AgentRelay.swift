import FoundationEssentials
import MachineCore
import SSH
#if canImport(Glibc)
import Glibc  // the relay moves bytes between client sockets and SSH channels with poll(2), recv(2) and send(2)
#endif

/// One round of the loop: channels opened (and one kept spare), bytes pumped both ways.
extension Agent {
    /// One pass over everything; true if anything moved.
    func serveRound() -> Bool {
        var progress = false
        // Connections nobody can serve in time are refused: the client sees why (an engine
        // client), or the socket close.
        let now = Date()
        let lostLong = session == nil && (guestSilence != nil || (sessionLostSince.map { now.timeIntervalSince($0) > Self.waitForSession } ?? false))
        waiting.removeAll { connection in
            guard lostLong || now.timeIntervalSince(connection.accepted) > Self.waitForSession else { return false }
            let lost = Int(now.timeIntervalSince(sessionLostSince ?? connection.accepted))
            log("refused a connection to \(connection.listener.name): no SSH session to \(guest.name) for \(lost) s")
            refuse(connection, why: guestSilence.map { "it stopped answering \(lost) s ago (\($0))" }
                ?? "no SSH session to the guest for \(lost) s" + (lastConnectError.isEmpty ? "" : " (\(lastConnectError))"))
            return true
        }
        guard let session else { return false }
        let receivedBefore = session.bytesReceived
        do {
            progress = try openChannels(session) || progress
            for connection in connections {
                progress = try pump(connection) || progress
            }
            connections.removeAll { connection in
                guard connection.finished || connection.done else { return false }
                if let channel = connection.channel, !channel.finish() { closing.append(channel) }
                return true
            }
            closing.removeAll { $0.finish() }
            // After the clients' data went out, so a spare's open never delays a request.
            try checkSpares()
            try openSpare(session)
            // Nothing read the session's socket dry this round (no connection, no spare, or
            // every client still has its last bytes to take): what it received is taken in
            // now, into libssh2's queues, which the channels' windows bound. Left in the socket,
            // poll() would report it at once, every round: a client of a published port that
            // stopped reading its download kept the loop spinning a core.
            if session.socketMayHoldInput { try reader?.takeIncoming() }
            try probeIfSilent(session)
        } catch {
            dropSession(error)
            return true
        }
        // What a call read may be queued for a channel pumped earlier in this round.
        if session.bytesReceived != receivedBefore { progress = true }
        return progress
    }

    func openChannels(_ session: Session) throws(SSHError) -> Bool {
        var progress = false
        if spareOpening != nil {
            try openSpare(session)
            if spareOpening != nil { return false }
        }
        while let connection = waiting.first {
            if let spare = connection.listener.spare {
                connection.listener.spare = nil
                connection.channel = spare
                connections.append(connection)
                waiting.removeFirst()
                progress = true
                continue
            }
            let channel: Channel?
            if connection.openingSince == nil { connection.openingSince = Date() }
            do {
                channel = try openChannel(session, to: connection.listener.target)
            } catch where error.affectsOnlyTheChannel {
                // Logged once per run of refusals: while the engine starts, clients retry a lot.
                if !refusing {
                    log("the guest refused a connection to \(connection.listener.target): \(error.message) (not logged again until one works)")
                    refusing = true
                }
                refuse(connection, message: "the engine of machine \(guest.name) is not running: the guest refused a connection to \(connection.listener.target) "
                    + "(\(error.message)); it starts again by itself: see `machine ssh\(MachineName.commandSuffix(guest.name)) -- tail /var/log/docker.log`")
                waiting.removeFirst()
                progress = true
                continue
            }
            guard let channel else {
                if let since = connection.openingSince, openTimedOut(since: since) {
                    throw SSHError(kind: .library, code: Agent.guestSilentCode, message: "no answer to a channel open for \(Int(Self.channelOpenTimeout)) s",
                                   operation: "opening a channel to \(connection.listener.target)")
                }
                return progress
            }
            connection.channel = channel
            refusing = false
            connection.listener.spareWanted = true
            connections.append(connection)
            waiting.removeFirst()
            progress = true
        }
        return progress
    }

    /// Whether a channel open in flight since `since` waited too long for the guest; a sleep
    /// of the guest meanwhile does not count.
    func openTimedOut(since: Date) -> Bool {
        Date().timeIntervalSince(sleeper?.awakeSince(since) ?? since) > Self.channelOpenTimeout
    }

    /// Nil while the open is in progress (call again with the same target).
    func openChannel(_ session: Session, to target: Target) throws(SSHError) -> Channel? {
        switch target {
        case .unixSocket(let path): return try Channel.openStreamLocal(session, path: path)
        case .tcp(let host, let port): return try Channel.openDirectTCPIP(session, host: host, port: port)
        }
    }

    /// Starts or goes on opening a spare channel for the first listener that wants one, when
    /// no client waits for a channel.
    func openSpare(_ session: Session) throws(SSHError) {
        if spareOpening == nil {
            guard waiting.isEmpty,
                  let listener = listeners.first(where: { $0.keepsSpare && $0.spareWanted && $0.spare == nil && $0.fd >= 0 })
            else { return }
            spareOpening = (listener, Date())
        }
        guard let (listener, since) = spareOpening else { return }
        let channel: Channel?
        do {
            channel = try openChannel(session, to: listener.target)
        } catch where error.affectsOnlyTheChannel {
            spareOpening = nil
            listener.spareWanted = false
            return
        }
        guard let channel else {
            if openTimedOut(since: since) {
                throw SSHError(kind: .library, code: Agent.guestSilentCode, message: "no answer to a channel open for \(Int(Self.channelOpenTimeout)) s",
                               operation: "opening a channel to \(listener.target)")
            }
            return
        }
        spareOpening = nil
        listener.spare = channel
    }

    /// A spare the guest closed (the engine restarted) or that carries data nobody asked
    /// for is never handed to a client: it is closed, and the next one opened.
    func checkSpares() throws(SSHError) {
        var scratch: UInt8 = 0
        for listener in listeners {
            guard let spare = listener.spare, spare.mayHaveInput else { continue }
            // Reading also lets libssh2 take in whatever the session received (keepalive
            // replies, the spare's own EOF) while no connection is open.
            let read = withUnsafeMutableBytes(of: &scratch) { byte in
                Result { () throws(SSHError) -> ChannelIO in try spare.read(into: byte) }
            }
            let result: ChannelIO
            do {
                result = try read.get()
            } catch where error.affectsOnlyTheChannel {
                result = .eof
            }
            guard result != .wouldBlock else { continue }
            listener.spare = nil
            if !spare.finish() { closing.append(spare) }
        }
    }

    func forgetSpares() {
        spareOpening = nil
        for listener in listeners { listener.spare = nil }
    }

    /// Moves what can move on one connection without blocking. A failure of the client
    /// socket or of this channel ends the connection; a session failure is thrown.
    func pump(_ connection: Connection) throws(SSHError) -> Bool {
        guard let channel = connection.channel, !connection.finished else { return false }
        var progress = false
        do {
            // Client -> guest.
            while true {
                let buffer = connection.toGuest
                if buffer.isEmpty && !connection.clientSentEOF {
                    // Nothing since poll() last looked, or since a read came back short: the
                    // next poll() will say when there is.
                    guard connection.clientMayHaveInput else { break }
                    let count = recv(connection.client, buffer.storage.baseAddress, Buffer.capacity, 0)
                    if count > 0 {
                        buffer.end = count
                        if count < Buffer.capacity { connection.clientMayHaveInput = false }
                    } else if count == 0 {
                        connection.clientSentEOF = true
                    } else if errno == EAGAIN || errno == EINTR {
                        connection.clientMayHaveInput = errno == EINTR
                        break
                    } else {
                        connection.finished = true
                        return true
                    }
                }
                if !buffer.isEmpty {
                    guard case .bytes(let count) = try channel.write(buffer.pending) else { break }
                    buffer.consumed(count)
                    progress = true
                    continue
                }
                if connection.clientSentEOF && !connection.eofSentToGuest {
                    guard try channel.sendEOF() else { break }
                    connection.eofSentToGuest = true
                    progress = true
                }
                break
            }
            // Guest -> client.
            while true {
                let buffer = connection.toClient
                if buffer.isEmpty && !connection.guestSentEOF {
                    // A read with nothing queued and the session's socket empty would only
                    // fail with EAGAIN.
                    guard channel.mayHaveInput else { break }
                    switch try channel.read(into: buffer.storage) {
                    case .bytes(let count): buffer.end = count
                    case .eof: connection.guestSentEOF = true
                    case .wouldBlock: break
                    }
                }
                if !buffer.isEmpty {
                    let count = send(connection.client, buffer.pending.baseAddress, buffer.pending.count, Int32(MSG_NOSIGNAL))
                    if count > 0 {
                        connection.answered = true
                        buffer.consumed(count)
                        progress = true
                        continue
                    }
                    if count < 0 && errno != EAGAIN && errno != EINTR {
                        connection.finished = true  // the client went away
                        return true
                    }
                    break
                }
                if connection.guestSentEOF && !connection.clientShutDown {
                    shutdown(connection.client, Int32(SHUT_WR))
                    connection.clientShutDown = true
                    progress = true
                }
                break
            }
        } catch where error.affectsOnlyTheChannel {
            connection.finished = true
            return true
        }
        return progress
    }

    /// Tells an engine client that got nothing yet why it gets nothing, as the engine tells
    /// its errors (the docker CLI prints "Error response from daemon: ..."); any other client
    /// sees its connection close.
    func refuse(_ connection: Connection, why: String) {
        refuse(connection, message: "machine \(guest.name) does not answer: \(why); see `machine status\(MachineName.commandSuffix(guest.name))` and \(guest.files.agentLog.path)")
    }

    func refuse(_ connection: Connection, message: String) {
        guard connection.listener.keepsSpare, !connection.answered, !connection.clientShutDown else { return }
        let body = (try? JSONEncoder().encode(["message": message])) ?? Data()
        let head = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let reply = Data(head.utf8) + body
        // The request first (briefly: it comes in one write): a reply to an unread request,
        // then a close, resets the connection, and the client would see the reset, not why.
        var poller = pollfd(fd: connection.client, events: Int16(POLLIN), revents: 0)
        var scratch = [UInt8](repeating: 0, count: 65536)
        if poll(&poller, 1, 300) > 0 { _ = recv(connection.client, &scratch, scratch.count, Int32(MSG_DONTWAIT)) }
        reply.withUnsafeBytes { _ = send(connection.client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(connection.client, Int32(SHUT_WR))
        connection.answered = true
    }
}
