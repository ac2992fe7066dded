import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The smallest HTTP/1.0 client over a unix socket: enough for the engine's API (`/_ping`,
/// `/containers/json`, the `/events` stream). HTTP/1.0, so the server closes the connection
/// at the end of a body and no chunked encoding comes back.
public enum UnixHTTP {
    /// A response whose head has been read: its status, the body bytes that came with the head,
    /// and the connection to read the rest from (the caller closes it).
    public struct Response {
        public let fd: Int32
        public let status: Int
        public let bodyStart: Data
    }

    /// Sends `GET target` on a new connection; nil if it could not connect or the head was bad.
    /// `timeout` bounds each send and receive.
    public static func open(socket path: String, target: String, timeout: Double? = nil) -> Response? {
        guard let fd = LocalSocket.connectUnix(path) else { return nil }
        if let timeout {
            var time = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        }
        let request = Array(request(target))
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count,
              let (status, rest) = readHead({ buffer in recv(fd, buffer.baseAddress, buffer.count, 0) })
        else {
            close(fd)
            return nil
        }
        return Response(fd: fd, status: status, bodyStart: rest)
    }

    /// `GET target` and its whole body (at most `limit` bytes); nil if anything failed.
    public static func get(socket path: String, target: String, timeout: Double? = nil, limit: Int = 64 << 20) -> (status: Int, body: Data)? {
        guard let response = open(socket: path, target: target, timeout: timeout) else { return nil }
        defer { close(response.fd) }
        var body = response.bodyStart
        var buffer = [UInt8](repeating: 0, count: 65536)
        while body.count <= limit {
            let count = recv(response.fd, &buffer, buffer.count, 0)
            if count < 0 { return nil }
            if count == 0 { return (response.status, body) }
            body.append(contentsOf: buffer[0..<count])
        }
        return nil
    }

    /// The bytes of `GET target` as this client sends it, on a socket or an SSH channel.
    public static func request(_ target: String) -> Data {
        Data("GET \(target) HTTP/1.0\r\nHost: docker\r\n\r\n".utf8)
    }

    /// Reads a response head with `read` (which fills the buffer it is given and returns the
    /// count, 0 or less at the end); its status code and whatever body bytes came with it.
    /// Nil when the connection ended first or the head was malformed.
    public static func readHead<Failure: Error>(
        _ read: (UnsafeMutableRawBufferPointer) throws(Failure) -> Int
    ) throws(Failure) -> (status: Int, rest: Data)? {
        var data = Data()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { buffer.deallocate() }
        while true {
            switch parseHead(data) {
            case .complete(let status, let rest): return (status, rest)
            case .malformed: return nil
            case .incomplete:
                let count = try read(buffer)
                if count <= 0 { return nil }
                data.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            }
        }
    }

    /// What the bytes received so far make of a response head.
    public enum Head: Equatable {
        /// No blank line yet, within the limit: read on.
        case incomplete
        /// No status code where HTTP puts it, or no end within `headLimit` bytes.
        case malformed
        case complete(status: Int, rest: Data)
    }

    /// The engine's heads are a few hundred bytes; a longer one is not worth reading on.
    public static let headLimit = 65536

    /// Parses a response head ("HTTP/1.0 200 OK\r\n...\r\n\r\n") from the start of `data`.
    /// The engine runs in the guest, so these bytes are the guest's (fuzzed: MachineFuzz).
    public static func parseHead(_ data: Data) -> Head {
        guard let range = data.firstRange(of: Data("\r\n\r\n".utf8)) else {
            return data.count < headLimit ? .incomplete : .malformed
        }
        guard range.lowerBound - data.startIndex < headLimit else { return .malformed }
        let head = String(decoding: data[..<range.lowerBound], as: UTF8.self)
        let fields = head.split(separator: " ", maxSplits: 2)
        guard fields.count >= 2, fields[0].hasPrefix("HTTP/"), fields[1].count == 3, let status = Int(fields[1]), status >= 100
        else { return .malformed }
        return .complete(status: status, rest: Data(data[range.upperBound...]))
    }
}
