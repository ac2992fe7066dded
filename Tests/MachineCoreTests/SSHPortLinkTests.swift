import Foundation
import MachineCore
import SSH
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The handshake that starts every agent session, against a fake guest on the other end of
/// socket pairs (one for the connection in, one for the port out, or one for both).
@Suite struct SSHPortLinkTests {
    func pair() -> (host: Int32, guest: Int32) {
        var fds: [Int32] = [-1, -1]
        precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        return (fds[0], fds[1])
    }

    func write(_ fd: Int32, _ text: [UInt8]) {
        precondition(text.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == text.count)
    }

    func readAvailable(_ fd: Int32) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        return count > 0 ? Array(buffer[0..<count]) : []
    }

    @Test func bytesOfEarlierConnectionsAreSkippedAndSSHBytesAfterTheAnswerAreLeft() throws {
        let (host, guest) = pair()
        defer { close(host); close(guest) }
        // What a dead session left (binary, no newline before the answer), an answer to another
        // connection's handshake, then ours, then sshd's banner.
        write(guest, [0x00, 0xff, 0x0a, 0x13, 0x37] + Array("machine-ready 0000\n".utf8)
            + [0xde, 0xad] + Array("machine-ready abc123\nSSH-2.0-OpenSSH_9.2\r\n".utf8))
        try SSHPortLink.handshake(send: host, receive: host, nonce: "abc123", deadline: Date().addingTimeInterval(5))
        #expect(readAvailable(guest) == Array("machine-sync abc123\n".utf8))
        #expect(readAvailable(host) == Array("SSH-2.0-OpenSSH_9.2\r\n".utf8))
    }

    @Test func anAnswerArrivingInPiecesIsFound() throws {
        let (host, guest) = pair()
        defer { close(host); close(guest) }
        let feeder = Thread { [self] in
            for piece in ["machine-re", "ady n", "1\n", "SSH-"] {
                Thread.sleep(forTimeInterval: 0.05)
                write(guest, Array(piece.utf8))
            }
        }
        feeder.start()
        try SSHPortLink.handshake(send: host, receive: host, nonce: "n1", deadline: Date().addingTimeInterval(5))
        Thread.sleep(forTimeInterval: 0.2)
        #expect(readAvailable(host) == Array("SSH-".utf8))
    }

    @Test func aGuestThatNeverAnswersTimesOutWithAClearError() {
        let (host, guest) = pair()
        defer { close(host); close(guest) }
        write(guest, Array("machine-ready someone-else\n".utf8))
        let started = Date()
        #expect {
            try SSHPortLink.handshake(send: host, receive: host, nonce: "mine", deadline: Date().addingTimeInterval(0.5))
        } throws: { error in
            (error as? SSHError)?.code == ETIMEDOUT && "\(error)".contains("did not answer")
        }
        #expect(Date().timeIntervalSince(started) < 3)
    }

    @Test func theLineGoesOnTheConnectionAndTheAnswerIsReadFromThePort() throws {
        let (hostIn, guestIn) = pair()
        let (hostOut, guestOut) = pair()
        defer { [hostIn, guestIn, hostOut, guestOut].forEach { close($0) } }
        write(guestOut, Array("machine-ready n2\nSSH-2.0-x\r\n".utf8))
        try SSHPortLink.handshake(send: hostIn, receive: hostOut, nonce: "n2", deadline: Date().addingTimeInterval(5))
        #expect(readAvailable(guestIn) == Array("machine-sync n2\n".utf8))
        #expect(readAvailable(guestOut).isEmpty)
        #expect(readAvailable(hostOut) == Array("SSH-2.0-x\r\n".utf8))
    }

    @Test func aConnectionTheGuestClosesFailsAtOnceNotAtTheTimeout() {
        let (hostIn, guestIn) = pair()
        let (hostOut, guestOut) = pair()
        defer { [hostIn, hostOut, guestOut].forEach { close($0) } }
        // What QEMU does when nobody listens in the guest: it accepted, then closes.
        Thread { Thread.sleep(forTimeInterval: 0.1); close(guestIn) }.start()
        let started = Date()
        #expect {
            try SSHPortLink.handshake(send: hostIn, receive: hostOut, nonce: "n3", deadline: Date().addingTimeInterval(10))
        } throws: { error in
            (error as? SSHError)?.code == ECONNRESET && "\(error)".contains("another session")
        }
        #expect(Date().timeIntervalSince(started) < 3)
    }

    @Test func aPortNobodyServesIsRefusedAtOnce() {
        #expect(throws: SSHError.self) {
            try SSHPortLink.open(socketPath: "/nonexistent/ssh-port.sock", inputPort: 1, timeout: 5)
        }
    }
}
