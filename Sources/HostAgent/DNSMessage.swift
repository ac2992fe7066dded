/// The little of RFC 1035 the host resolver needs: read one question (with its EDNS payload
/// size) from a query the guest sent, and build the answer to it. Everything here reads bytes a
/// guest controls, so every read is bounds-checked and a name's compression pointers are
/// followed a bounded number of times; a query that does not parse gets FORMERR or nothing.
public struct DNSQuery: Sendable, Equatable {
    public let id: UInt16
    /// The header's second 16 bits: opcode and RD are echoed in the answer.
    public let flags: UInt16
    /// Lower-cased, without the trailing dot ("host.docker.internal").
    public let name: String
    public let type: UInt16
    public let qclass: UInt16
    /// The question section as it came, echoed in the answer.
    public let question: [UInt8]
    /// The largest answer the client takes over UDP: 512, or its EDNS payload size.
    public let udpPayloadSize: Int
    /// Whether the query carried an EDNS OPT record (the answer then carries one too).
    public let hasEDNS: Bool

    public static let typeA: UInt16 = 1
    public static let typeAAAA: UInt16 = 28
    public static let typeOPT: UInt16 = 41
    public static let classIN: UInt16 = 1

    public var opcode: UInt16 { (flags >> 11) & 0xF }

    public enum ParseError: Error, Equatable {
        /// Too short or malformed to answer at all (no id to answer to).
        case unreadable
        /// Has a header, but not one question we can read: FORMERR to this id.
        case malformed(id: UInt16, flags: UInt16)
    }

    public init(_ bytes: [UInt8]) throws(ParseError) {
        guard bytes.count >= 12 else { throw .unreadable }
        var reader = Reader(bytes: bytes, offset: 0)
        let id = reader.u16()!, flags = reader.u16()!
        let qdcount = reader.u16()!, ancount = reader.u16()!, nscount = reader.u16()!, arcount = reader.u16()!
        // A response, or not exactly one question: nothing a stub resolver sends.
        guard flags & 0x8000 == 0, qdcount == 1 else { throw .malformed(id: id, flags: flags) }
        let questionStart = reader.offset
        guard let name = reader.name(), let type = reader.u16(), let qclass = reader.u16() else {
            throw .malformed(id: id, flags: flags)
        }
        let question = Array(bytes[questionStart..<reader.offset])
        // Skip answer and authority records (a query has none, but a client may send some),
        // then look for the OPT record among the additional ones.
        var payload = 512
        var edns = false
        for index in 0..<(Int(ancount) + Int(nscount) + Int(arcount)) {
            guard reader.name() != nil, let rrType = reader.u16(), let rrClass = reader.u16(),
                  reader.skip(4), let length = reader.u16(), reader.skip(Int(length))
            else { throw .malformed(id: id, flags: flags) }
            if index >= Int(ancount) + Int(nscount) && rrType == Self.typeOPT {
                edns = true
                payload = min(max(Int(rrClass), 512), 4096)
            }
        }
        self.id = id
        self.flags = flags
        self.name = name
        self.type = type
        self.qclass = qclass
        self.question = question
        self.udpPayloadSize = payload
        self.hasEDNS = edns
    }

    /// A record of the answer section; the owner is always the question's name.
    public struct Record: Sendable, Equatable {
        public let type: UInt16
        public let ttl: UInt32
        public let data: [UInt8]

        public init(type: UInt16, ttl: UInt32, data: [UInt8]) {
            self.type = type
            self.ttl = ttl
            self.data = data
        }
    }

    public enum ResponseCode: UInt16, Sendable {
        case noError = 0, formatError = 1, serverFailure = 2, nameError = 3, notImplemented = 4, refused = 5
    }

    /// The answer: the question echoed, then `records` (as many as fit in `limit` bytes; TC set
    /// when some did not).
    public func answer(_ code: ResponseCode, records: [Record] = [], limit: Int? = nil) -> [UInt8] {
        let limit = limit ?? Int.max
        let opt: [UInt8] = hasEDNS ? [0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0] : [] // root, OPT, 4096, no flags
        var body: [UInt8] = []
        var count = 0
        var truncated = false
        for record in records {
            var bytes: [UInt8] = [0xC0, 0x0C] // the question's name, at offset 12
            bytes.append(contentsOf: Self.be16(record.type) + Self.be16(Self.classIN))
            bytes.append(contentsOf: [UInt8(record.ttl >> 24 & 0xFF), UInt8(record.ttl >> 16 & 0xFF), UInt8(record.ttl >> 8 & 0xFF), UInt8(record.ttl & 0xFF)])
            bytes.append(contentsOf: Self.be16(UInt16(record.data.count)) + record.data)
            if 12 + question.count + body.count + bytes.count + opt.count > limit {
                truncated = true
                break
            }
            body += bytes
            count += 1
        }
        // QR, the query's opcode and RD, RA; TC when records were left out.
        let flags: UInt16 = 0x8000 | (self.flags & 0x7900) | 0x0080 | (truncated ? 0x0200 : 0) | code.rawValue
        var message = Self.be16(id) + Self.be16(flags) + Self.be16(1) + Self.be16(UInt16(count)) + Self.be16(0) + Self.be16(hasEDNS ? 1 : 0)
        message += question
        message += body
        message += opt
        return message
    }

    /// FORMERR for a query whose question could not be read.
    public static func formatError(id: UInt16, flags: UInt16) -> [UInt8] {
        let answerFlags: UInt16 = 0x8000 | (flags & 0x7900) | 0x0080 | ResponseCode.formatError.rawValue
        return be16(id) + be16(answerFlags) + [0, 0, 0, 0, 0, 0, 0, 0]
    }

    static func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }

    /// Reads big-endian fields and names, never past the end.
    struct Reader {
        let bytes: [UInt8]
        var offset: Int

        mutating func u16() -> UInt16? {
            guard offset + 2 <= bytes.count else { return nil }
            defer { offset += 2 }
            return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
        }

        mutating func skip(_ count: Int) -> Bool {
            guard count >= 0, offset + count <= bytes.count else { return false }
            offset += count
            return true
        }

        /// A name, following compression pointers (at most 16, always backwards); nil when it
        /// runs off the end, loops, or breaks the 255-byte limit.
        mutating func name() -> String? {
            var labels: [String] = []
            var position = offset
            var jumps = 0
            var length = 0
            var endAfterFirstJump: Int?
            while true {
                guard position < bytes.count else { return nil }
                let byte = bytes[position]
                if byte & 0xC0 == 0xC0 {
                    guard position + 1 < bytes.count, jumps < 16 else { return nil }
                    let target = Int(byte & 0x3F) << 8 | Int(bytes[position + 1])
                    guard target < position else { return nil }
                    if endAfterFirstJump == nil { endAfterFirstJump = position + 2 }
                    position = target
                    jumps += 1
                    continue
                }
                guard byte & 0xC0 == 0 else { return nil }
                let count = Int(byte)
                if count == 0 {
                    offset = endAfterFirstJump ?? position + 1
                    return labels.joined(separator: ".").lowercased()
                }
                guard position + 1 + count <= bytes.count else { return nil }
                length += count + 1
                guard length <= 255 else { return nil }
                // A dot or NUL inside a label would change the name getaddrinfo is asked for, and
                // a byte outside printable ASCII would be decoded into another name (a host name
                // is ASCII; IDNs travel as punycode). MachineFuzz's dns target found the second.
                guard !bytes[(position + 1)...(position + count)].contains(where: { $0 == 0x2E || $0 < 0x21 || $0 > 0x7E }) else { return nil }
                labels.append(String(decoding: bytes[(position + 1)...(position + count)], as: UTF8.self))
                position += 1 + count
            }
        }
    }
}
