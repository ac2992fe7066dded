import Foundation
import SSH
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Channels and SFTP against a real OpenSSH sshd on loopback.
@Suite(.serialized) struct ChannelTests {
    func login(_ server: LocalSSHD) throws -> Session {
        let session = try Session(host: "127.0.0.1", port: server.port)
        try session.verifyHostKey(pinned: try #require(HostKey(line: server.hostKeyPublic)))
        try session.authenticate(user: server.user, privateKeyPath: server.clientKey.path)
        return session
    }

    @Test func streamLocalChannelCarriesHalfCloseBothWays() throws {
        let server = try LocalSSHD()
        let path = server.folder.appendingPathComponent("echo.sock").path
        TestSockets.countingServer(listening: try TestSockets.unixListener(path))
        let session = try login(server)
        let channel = try #require(try Channel.openStreamLocal(session, path: path))
        let payload = Data((0..<(1 << 20)).map { UInt8($0 & 0xff) })
        try channel.writeAll(payload)
        try channel.sendEOF()
        let reply = try channel.readAll()
        #expect(String(decoding: reply, as: UTF8.self) == "got \(1 << 20) bytes")
        #expect(channel.receivedEOF)
    }

    @Test func aRefusedChannelLeavesTheSessionUsable() throws {
        let server = try LocalSSHD()
        let session = try login(server)
        do {
            _ = try Channel.openStreamLocal(session, path: server.folder.appendingPathComponent("nobody-listens").path)
            Issue.record("a channel to a missing socket opened")
        } catch {
            #expect(error.affectsOnlyTheChannel)
        }
        #expect(try session.run("echo still here").output == Data("still here\n".utf8))
    }

    @Test func sftpRoundTripKeepsBytesAndMode() throws {
        let server = try LocalSSHD()
        let session = try login(server)
        let sftp = try SFTP(session: session)
        let source = server.folder.appendingPathComponent("source")
        let bytes = Data((0..<300_000).map { _ in UInt8.random(in: 0...255) })
        try bytes.write(to: source)
        let remote = server.folder.appendingPathComponent("remote").path
        let input = open(source.path, O_RDONLY)
        defer { close(input) }
        var reported: UInt64 = 0
        try sftp.upload(from: input, to: remote, permissions: 0o640) { reported = $0 }
        #expect(reported == UInt64(bytes.count))
        let attributes = try #require(try sftp.attributes(remote))
        #expect(attributes.permissions == 0o640 && attributes.isRegularFile && attributes.size == UInt64(bytes.count))
        #expect(try sftp.attributes(server.folder.appendingPathComponent("missing").path) == nil)
        let copy = server.folder.appendingPathComponent("copy")
        let output = open(copy.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let mode = try sftp.download(remote, to: output)
        close(output)
        #expect(mode == 0o640)
        #expect(try Data(contentsOf: copy) == bytes)
    }

    @Test func sftpRenameReplacesAFileOrALinkButNotWhatTheLinkPointsTo() throws {
        let server = try LocalSSHD()
        let sftp = try SFTP(session: try login(server))
        let folder = server.folder
        let target = folder.appendingPathComponent("target")
        try Data("old".utf8).write(to: target)
        try Data("new".utf8).write(to: folder.appendingPathComponent("new.part"))
        try sftp.rename(folder.appendingPathComponent("new.part").path, to: target.path)
        #expect(try String(contentsOf: target, encoding: .utf8) == "new")
        // A link at the destination is replaced; the file it pointed to is left alone.
        let link = folder.appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: target.path)
        try Data("via link".utf8).write(to: folder.appendingPathComponent("other.part"))
        try sftp.rename(folder.appendingPathComponent("other.part").path, to: link.path)
        #expect(try String(contentsOf: target, encoding: .utf8) == "new")
        let replaced = try FileManager.default.attributesOfItem(atPath: link.path)
        #expect(replaced[.type] as? FileAttributeType == .typeRegular)
        #expect(try String(contentsOf: link, encoding: .utf8) == "via link")
        // A folder at the destination is not removed.
        let folderTarget = folder.appendingPathComponent("a-folder")
        try FileManager.default.createDirectory(at: folderTarget, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(at: folderTarget.appendingPathComponent("kept"), withIntermediateDirectories: false)
        try Data("x".utf8).write(to: folder.appendingPathComponent("x.part"))
        #expect(throws: SSHError.self) { try sftp.rename(folder.appendingPathComponent("x.part").path, to: folderTarget.path) }
        #expect(FileManager.default.fileExists(atPath: folderTarget.appendingPathComponent("kept").path))
    }

    @Test func aReaderTakesInTheServersKeepalivesWhileNoChannelIsRead() throws {
        // The guest's sshd probes a silent client every second; libssh2 answers a probe only
        // when a channel read takes it in. The agent's session for forwarded ports often has
        // no channel at all.
        let server = try LocalSSHD(settings: ["ClientAliveInterval 1"])
        let session = try login(server)
        let reader = try Channel.openReader(session)
        session.isBlocking = false
        func readable(within milliseconds: Int32) -> Bool {
            var fd = pollfd(fd: session.socketDescriptor, events: Int16(POLLIN), revents: 0)
            return poll(&fd, 1, milliseconds) == 1
        }
        // Unread, a probe keeps the socket readable: a poll loop would spin on it.
        #expect(readable(within: 5000))
        usleep(100_000)
        #expect(readable(within: 0))
        try reader.takeIncoming()
        #expect(!readable(within: 0))
        // The reader took nothing from other channels: the session goes on as before.
        session.isBlocking = true
        #expect(String(decoding: try session.run("echo alive").output, as: UTF8.self) == "alive\n")
    }

    @Test func nonBlockingReadsReportWouldBlockInsteadOfEOF() throws {
        let server = try LocalSSHD()
        let session = try login(server)
        let channel = try Channel(session: session)
        try channel.exec("sleep 1; echo late")
        session.isBlocking = false
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        #expect(try channel.read(into: buffer) == .wouldBlock)
        session.isBlocking = true
        #expect(String(decoding: try channel.readAll(), as: UTF8.self) == "late\n")
        #expect(try channel.close() == 0)
    }

    /// A TCP connection to the test sshd whose socket holds only a few KiB: every packet the
    /// session sends meets a full socket part way.
    func cramped(_ server: LocalSSHD) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var size: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(server.port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0)
        return fd
    }

    @Test func nonBlockingWritesOnSeveralChannelsWithKeepalivesThroughAFullSocketAllArrive() throws {
        // libssh2 1.10 fails any other send while a packet is half sent (LIBSSH2_ERROR_BAD_USE);
        // the host agent interleaves channels and keepalives, so no packet may be left half sent.
        let server = try LocalSSHD()
        let session = try Session(socket: try cramped(server), peer: "cramped sshd")
        try session.verifyHostKey(pinned: try #require(HostKey(line: server.hostKeyPublic)))
        try session.authenticate(user: server.user, privateKeyPath: server.clientKey.path)
        let channels = try (0..<2).map { _ in try Channel(session: session) }
        for channel in channels { try channel.exec("wc -c") }
        session.configureKeepalive(interval: 1, wantReply: true)
        session.isBlocking = false
        let payload = [UInt8](repeating: 0x5a, count: 4 << 20)
        var sent = [0, 0]
        let started = Date()
        while sent.contains(where: { $0 < payload.count }) {
            for (index, channel) in channels.enumerated() where sent[index] < payload.count {
                let chunk = min(65536, payload.count - sent[index])
                let result = try payload.withUnsafeBytes { all in
                    try channel.write(UnsafeRawBufferPointer(rebasing: all[sent[index]..<(sent[index] + chunk)]))
                }
                if case .bytes(let count) = result { sent[index] += count }
            }
            _ = try session.sendKeepalive()
            try #require(Date().timeIntervalSince(started) < 60)
        }
        session.isBlocking = true
        for channel in channels {
            try channel.sendEOF()
            #expect(String(decoding: try channel.readAll(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "\(4 << 20)")
        }
    }
}
