import Foundation
import SSH
#if canImport(Glibc)
import Glibc
#endif

/// The host end of the guest's virtio-serial SSH port (iso/rootfs/usr/lib/machine/ssh-port-run):
/// QEMU listens on a unix socket, and what is written there comes out of the port in the guest.
///
/// A port is one byte stream for the guest's whole boot, so it may still hold bytes of an earlier
/// connection in either direction (an agent killed mid-transfer, an sshd that died). Each
/// connection therefore starts with a handshake: we send "machine-sync NONCE\n", the guest skips
/// everything before that line and answers "machine-ready NONCE\n", we skip everything before
/// that, and what follows is sshd's SSH stream.
public enum SSHPortLink {
    /// A socket positioned at the start of the guest sshd's SSH stream; closed on failure.
    public static func open(path: String, timeout: Double) throws(SSHError) -> Int32 {
        guard let fd = LocalSocket.connectUnix(path) else {
            throw SSHError(kind: .system, code: errno, message: String(cString: strerror(errno)), operation: "connecting to \(path)")
        }
        do {
            try handshake(fd, nonce: randomNonce(), deadline: Date().addingTimeInterval(timeout))
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    /// The handshake on a connected socket (public for tests).
    public static func handshake(_ fd: Int32, nonce: String, deadline: Date) throws(SSHError) {
        let sync = Array("machine-sync \(nonce)\n".utf8)
        guard sync.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == sync.count else {
            throw failure(errno, "sending the handshake on the guest's SSH port")
        }
        let ready = Array("machine-ready \(nonce)".utf8)
        var line: [UInt8] = []
        var peeked = [UInt8](repeating: 0, count: 4096)
        while true {
            let left = deadline.timeIntervalSinceNow
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard left > 0, poll(&poller, 1, Int32(left * 1000) + 1) > 0 else {
                if left > 0 && errno == EINTR { continue }
                throw SSHError(kind: .system, code: ETIMEDOUT, message: "the guest did not answer on its SSH port",
                               operation: "waiting for the guest's SSH port (is ssh-port-run running in the guest?)")
            }
            // Look before taking: nothing after the answer's newline may be read here, it is
            // the start of sshd's stream and belongs to libssh2.
            let count = recv(fd, &peeked, peeked.count, Int32(MSG_PEEK))
            if count == 0 {
                throw SSHError(kind: .system, code: ECONNRESET, message: "the port closed during the handshake",
                               operation: "waiting for the guest's SSH port")
            }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw failure(errno, "reading the guest's SSH port")
            }
            let take = peeked[0..<count].firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? count
            guard recv(fd, &peeked, take, 0) == take else { throw failure(errno, "reading the guest's SSH port") }
            // Only a line's end can be the answer: bytes of an earlier connection may run into
            // it without a newline between.
            line = Array((line + peeked[0..<take]).suffix(ready.count + 1))
            guard line.last == UInt8(ascii: "\n") else { continue }
            if line.count == ready.count + 1 && line.dropLast().elementsEqual(ready) { return }
            line = []
        }
    }

    static func randomNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(format: "%08x", UInt32.random(in: .min ... .max, using: &generator)) }.joined()
    }

    private static func failure(_ code: Int32, _ operation: String) -> SSHError {
        SSHError(kind: .system, code: code, message: String(cString: strerror(code)), operation: operation)
    }
}
