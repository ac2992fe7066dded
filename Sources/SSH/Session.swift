import CLibSSH2
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

private let libraryReady: Int32 = libssh2_init(0)

/// The host key an SSH server presented: algorithm name and base64 blob, as in known_hosts.
public struct HostKey: Equatable, Sendable {
    public let algorithm: String
    public let base64: String

    public init(algorithm: String, base64: String) {
        self.algorithm = algorithm
        self.base64 = base64
    }

    /// Parses "ssh-ed25519 AAAA..." (a comment after the blob is ignored).
    public init?(line: String) {
        let fields = line.split(whereSeparator: \.isWhitespace)
        guard fields.count >= 2, fields[0].hasPrefix("ssh-") || fields[0].hasPrefix("ecdsa-") else { return nil }
        self.init(algorithm: String(fields[0]), base64: String(fields[1]))
    }

    public var line: String { "\(algorithm) \(base64)" }
}

/// One SSH connection (a stream socket + libssh2 session), blocking. libssh2 is not thread-safe
/// per session: use a Session from one thread at a time. Closed when the last reference goes away.
public final class Session {
    let raw: OpaquePointer
    /// Where the session reads from (and writes to, unless `io.sendSocket` differs).
    private let socket: Int32
    private let io: SessionIO
    /// Who is at the other end, for messages: "127.0.0.1:2222" or a socket's description.
    public let peer: String

    /// Connects over TCP and completes the SSH handshake. The host key is not trusted yet: call
    /// `verifyHostKey(pinned:)` before authenticating.
    public convenience init(host: String, port: Int, timeout: Double = 20) throws(SSHError) {
        try Session.checkLibrary()
        let fd = try Session.connectTCP(host: host, port: port, timeout: timeout)
        try self.init(socket: fd, peer: "\(host):\(port)", timeout: timeout)
    }

    /// Completes the SSH handshake over `fd`, an already connected stream socket of any family,
    /// or, with `sendSocket`, reading `fd` and writing `sendSocket` (the session owns them from
    /// here on, and closes them if the handshake fails).
    public init(socket fd: Int32, sendSocket: Int32? = nil, peer: String, timeout: Double = 20) throws(SSHError) {
        let output = sendSocket ?? fd
        let closeSockets = { close(fd); if output != fd { close(output) } }
        do { try Session.checkLibrary() } catch { closeSockets(); throw error }
        self.peer = peer
        let io = SessionIO(sendSocket: output)
        guard let session = libssh2_session_init_ex(nil, nil, nil, Unmanaged.passUnretained(io).toOpaque()) else {
            closeSockets()
            throw SSHError(kind: .library, code: -1, message: "out of memory", operation: "creating an SSH session")
        }
        libssh2_session_set_blocking(session, 1)
        _ = libssh2_session_callback_set(session, LIBSSH2_CALLBACK_SEND, unsafeBitCast(sendWholePackets, to: UnsafeMutableRawPointer.self))
        _ = libssh2_session_callback_set(session, LIBSSH2_CALLBACK_RECV, unsafeBitCast(receiveCounted, to: UnsafeMutableRawPointer.self))
        // A forward that accepts but whose server never answers (a paused guest) must not
        // hang us: blocking calls give up after `timeout` seconds until it is changed.
        libssh2_session_set_timeout(session, Int(timeout * 1000))
        Session.preferFastAlgorithms(session)
        let rc = libssh2_session_handshake(session, libssh2_socket_t(fd))
        if rc != 0 {
            let error = SSHError.last(session, rc, "SSH handshake with \(peer)")
            libssh2_session_free(session)
            closeSockets()
            throw error
        }
        self.raw = session
        self.socket = fd
        self.io = io
    }

    private static func checkLibrary() throws(SSHError) {
        guard libraryReady == 0 else {
            throw SSHError(kind: .library, code: libraryReady, message: "libssh2_init failed", operation: "starting libssh2")
        }
    }

    deinit {
        libssh2_session_set_blocking(raw, 1)
        libssh2_session_disconnect_ex(raw, SSH_DISCONNECT_BY_APPLICATION, "bye", "")
        libssh2_session_free(raw)
        close(socket)
        if io.sendSocket != socket { close(io.sendSocket) }
    }

    /// Blocking (the default) or not. In non-blocking mode calls report that they would
    /// block, and the caller polls `socketDescriptor` for `blockedDirections`.
    public var isBlocking: Bool {
        get { libssh2_session_get_blocking(raw) != 0 }
        set { libssh2_session_set_blocking(raw, newValue ? 1 : 0) }
    }

    /// Seconds a blocking call may wait before failing; 0 waits forever.
    public var timeout: Double {
        get { Double(libssh2_session_get_timeout(raw)) / 1000 }
        set { libssh2_session_set_timeout(raw, Int(newValue * 1000)) }
    }

    /// The socket under the session, to poll on (the one it reads: writes never report that
    /// they would block, they wait for room themselves).
    public var socketDescriptor: Int32 { socket }

    /// Bytes read from the socket so far. Any libssh2 call may read, and queue what it read for
    /// channels other than its own; a non-blocking caller that saw this change must look at
    /// its channels again before it sleeps in poll(), which will not report those bytes again.
    public var bytesReceived: UInt64 { io.bytesReceived }

    /// Whether a read may find anything beyond what libssh2 has already queued for its
    /// channels: false once a read found the socket empty, until `socketTurnedReadable()`.
    /// A non-blocking caller skips the reads (each one a recv(2) that fails with EAGAIN) of
    /// channels for which nothing is queued (`Channel.mayHaveInput`).
    public var socketMayHoldInput: Bool { io.mayHoldInput }

    /// Tells the session that poll() reported its socket readable (or failed or hung up).
    public func socketTurnedReadable() {
        io.mayHoldInput = true
    }

    /// Which way the last call that would block was waiting: poll for these.
    public var blockedDirections: (inbound: Bool, outbound: Bool) {
        let directions = libssh2_session_block_directions(raw)
        return (directions & LIBSSH2_SESSION_BLOCK_INBOUND != 0, directions & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0)
    }

    /// Sends a keepalive at most every `interval` seconds (libssh2 makes 1 into 2), when
    /// `sendKeepalive()` is called; asking for a reply if `wantReply`.
    /// libssh2 1.10 keeps every reply to a keepalive in the session's list of received packets
    /// for as long as the session lives (libssh2 issue #623; still so upstream): nothing takes
    /// it out, and every channel read walks that list. So a keepalive that asks for a reply
    /// is memory and time for good: send one only when an answer is needed.
    public func configureKeepalive(interval: Int, wantReply: Bool) {
        libssh2_keepalive_config(raw, wantReply ? 1 : 0, UInt32(interval))
    }

    /// Keepalives this session sent.
    public private(set) var keepalivesSent = 0

    /// Sends a keepalive if one is due; returns the seconds until the next one.
    public func sendKeepalive() throws(SSHError) -> Int {
        var next: Int32 = 0
        let sentBefore = io.bytesSent
        let rc = libssh2_keepalive_send(raw, &next)
        if io.bytesSent != sentBefore { keepalivesSent += 1 }
        if rc != 0 && rc != LIBSSH2_ERROR_EAGAIN { throw SSHError.last(raw, rc, "sending a keepalive to \(peer)") }
        return Int(next)
    }

    /// MACs and ciphers in order of what costs a guest under emulation least: the guest's sshd
    /// does every byte's crypto in software under TCG, and that is what limits forwarded
    /// throughput. Measured in the guest (`openssl speed`, 16 KiB blocks): MD5 513 MB/s, SHA-1
    /// 126 MB/s, SHA-256 60-87 MB/s; AES-128-CTR 127 MB/s on emulated AES-NI. With hmac-md5 a
    /// forwarded port moved 9-23% more per second than with hmac-sha1 in interleaved runs by
    /// hand (README, the bench/port_forward.py table). HMAC-MD5 has no practical forgery
    /// attack (RFC 6151), and this session only ever runs over the host's loopback into QEMU's user-mode network, where
    /// whoever could tamper with it could read the guest's memory anyway; AES-CTR still
    /// encrypts. Guest images before hmac-md5 was enabled in their sshd fall back to hmac-sha1.
    /// libssh2 1.10 has neither chacha20-poly1305, GCM nor UMAC.
    static let macPreference = "hmac-md5,hmac-sha1,hmac-sha2-256,hmac-sha2-512"
    static let cipherPreference = "aes128-ctr,aes256-ctr,aes192-ctr"

    /// The algorithms negotiated for this session, for logs: cipher and MAC, client to server.
    public var algorithms: String {
        let cipher = libssh2_session_methods(raw, LIBSSH2_METHOD_CRYPT_CS).map { String(cString: $0) } ?? "?"
        let mac = libssh2_session_methods(raw, LIBSSH2_METHOD_MAC_CS).map { String(cString: $0) } ?? "?"
        return "\(cipher), \(mac)"
    }

    private static func preferFastAlgorithms(_ session: OpaquePointer) {
        libssh2_session_method_pref(session, LIBSSH2_METHOD_MAC_CS, macPreference)
        libssh2_session_method_pref(session, LIBSSH2_METHOD_MAC_SC, macPreference)
        libssh2_session_method_pref(session, LIBSSH2_METHOD_CRYPT_CS, cipherPreference)
        libssh2_session_method_pref(session, LIBSSH2_METHOD_CRYPT_SC, cipherPreference)
    }

    /// The key the server presented in the handshake.
    public func hostKey() throws(SSHError) -> HostKey {
        var length = 0
        var type: Int32 = 0
        guard let bytes = libssh2_session_hostkey(raw, &length, &type) else {
            throw SSHError.last(raw, -1, "reading the host key of \(peer)")
        }
        let blob = Data(bytes: bytes, count: length)
        // The blob starts with the algorithm name as an SSH string: uint32 length, then bytes.
        var algorithm = "unknown"
        if blob.count > 4 {
            let nameLength = Int(blob.prefix(4).reduce(0) { $0 << 8 | UInt32($1) })
            if blob.count >= 4 + nameLength {
                algorithm = String(decoding: blob.dropFirst(4).prefix(nameLength), as: UTF8.self)
            }
        }
        return HostKey(algorithm: algorithm, base64: blob.base64EncodedString())
    }

    /// OpenSSH's "SHA256:..." fingerprint of the presented host key.
    public func hostKeyFingerprint() throws(SSHError) -> String {
        guard let hash = libssh2_hostkey_hash(raw, LIBSSH2_HOSTKEY_HASH_SHA256) else {
            throw SSHError.last(raw, -1, "hashing the host key of \(peer)")
        }
        let digest = Data(bytes: hash, count: 32).base64EncodedString()
        return "SHA256:" + digest.replacing("=", with: "")
    }

    /// Refuses to go on unless the server's key is the pinned one.
    public func verifyHostKey(pinned: HostKey) throws(SSHError) {
        let presented = try hostKey()
        guard presented == pinned else {
            throw SSHError(
                kind: .hostKeyMismatch, code: 0,
                message: "the server presented \(presented.algorithm) key \(try hostKeyFingerprint()), not the pinned one; "
                    + "someone else may be answering on this port, or the machine's data disk was replaced",
                operation: "verifying the host key of \(peer)")
        }
    }

    /// Public-key login with an OpenSSH private key file (no passphrase).
    public func authenticate(user: String, privateKeyPath: String) throws(SSHError) {
        let rc = libssh2_userauth_publickey_fromfile_ex(
            raw, user, UInt32(user.utf8.count), nil, privateKeyPath, nil)
        guard rc == 0 else { throw SSHError.last(raw, rc, "logging in as \(user) with \(privateKeyPath)") }
    }
}
