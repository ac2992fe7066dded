import Foundation
import MachineCore
import SSH
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The handshake that starts every connection to the guest's SSH port, against a fake guest on
/// the other end of a socket pair.
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
        try SSHPortLink.handshake(host, nonce: "abc123", deadline: Date().addingTimeInterval(5))
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
        try SSHPortLink.handshake(host, nonce: "n1", deadline: Date().addingTimeInterval(5))
        Thread.sleep(forTimeInterval: 0.2)
        #expect(readAvailable(host) == Array("SSH-".utf8))
    }

    @Test func aGuestThatNeverAnswersTimesOutWithAClearError() {
        let (host, guest) = pair()
        defer { close(host); close(guest) }
        write(guest, Array("machine-ready someone-else\n".utf8))
        let started = Date()
        #expect {
            try SSHPortLink.handshake(host, nonce: "mine", deadline: Date().addingTimeInterval(0.5))
        } throws: { error in
            (error as? SSHError)?.code == ETIMEDOUT && "\(error)".contains("did not answer")
        }
        #expect(Date().timeIntervalSince(started) < 3)
    }

    @Test func aPortNobodyServesIsRefusedAtOnce() {
        #expect(throws: SSHError.self) {
            try SSHPortLink.open(path: "/nonexistent/ssh-port.sock", timeout: 5)
        }
    }
}
