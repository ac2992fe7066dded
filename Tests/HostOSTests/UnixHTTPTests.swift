import Foundation
import HostOS
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// UnixHTTP against a real listener on a unix socket that answers one request as given.
@Suite struct UnixHTTPTests {
    /// Serves one connection: reads the request head, writes `response` in `pieces` writes, closes.
    func serveOnce(_ response: String, pieces: Int = 1) throws -> (path: String, request: () -> String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("http-\(UUID().uuidString.prefix(8)).sock").path
        let listener = try LocalSocket.listenUnix(path)
        let received = Received()
        Thread.detachNewThread {
            var pollFD = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            _ = poll(&pollFD, 1, 5000)
            let fd = accept(listener, nil, nil)
            var head = Data()
            var buffer = [UInt8](repeating: 0, count: 1024)
            while !head.contains(Data("\r\n\r\n".utf8)) {
                let count = recv(fd, &buffer, buffer.count, 0)
                if count <= 0 { break }
                head.append(contentsOf: buffer[0..<count])
            }
            received.set(String(decoding: head, as: UTF8.self))
            let bytes = Array(response.utf8)
            let size = max(1, bytes.count / pieces)
            var offset = 0
            while offset < bytes.count {
                let end = min(bytes.count, offset + size)
                _ = send(fd, Array(bytes[offset..<end]), end - offset, Int32(MSG_NOSIGNAL))
                offset = end
                usleep(2000)
            }
            close(fd)
            close(listener)
            unlink(path)
        }
        return (path, { received.get() })
    }

    final class Received: @unchecked Sendable {
        private let lock = NSLock()
        private var text = ""
        func set(_ value: String) { lock.lock(); text = value; lock.unlock() }
        func get() -> String { lock.lock(); defer { lock.unlock() }; return text }
    }

    @Test func getReadsTheWholeBodyWhateverTheWritesLookLike() throws {
        let body = String(repeating: "x", count: 100_000)
        let server = try serveOnce("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body, pieces: 37)
        let response = try #require(UnixHTTP.get(socket: server.path, target: "/containers/json", timeout: 5))
        #expect(response.status == 200)
        #expect(response.body == Data(body.utf8))
        #expect(server.request().hasPrefix("GET /containers/json HTTP/1.0\r\n"))
    }

    @Test func aStatusOtherThan200IsReturnedAsItIs() throws {
        let server = try serveOnce("HTTP/1.0 404 Not Found\r\n\r\nno such thing")
        let response = try #require(UnixHTTP.get(socket: server.path, target: "/nope", timeout: 5))
        #expect(response.status == 404 && response.body == Data("no such thing".utf8))
    }

    @Test func aBadHeadOrNoServerIsNil() throws {
        let server = try serveOnce("SSH-2.0-OpenSSH_9.2\r\n\r\n")
        #expect(UnixHTTP.get(socket: server.path, target: "/_ping", timeout: 5) == nil)
        #expect(UnixHTTP.get(socket: "/nonexistent/docker.sock", target: "/_ping", timeout: 1) == nil)
    }
}
