import FoundationEssentials

extension DomainDefinition {
    /// The machine a domain belongs to (its home, $MACHINE_HOME, and its name there), and
    /// its config as machine last wrote it. That copy lives in libvirt's own store, out of
    /// the guest's reach, so a config.json rewritten through a share is noticed.
    public struct Owner: Sendable, Equatable {
        public var home: String
        public var machine: String
        /// config.json's content as machine wrote it; nil in domains made before machine kept it.
        public var config: Data?
        /// The config `config` replaced: a config.json still equal to it is a save cut short
        /// between its two writes (this one first, then config.json).
        public var previous: Data?

        public init(home: String, machine: String, config: Data? = nil, previous: Data? = nil) {
            self.home = home
            self.machine = machine
            self.config = config
            self.previous = previous
        }

        /// The namespace of our element in libvirt's `<metadata>`, and its prefix.
        public static let namespace = "https://machine.invalid/xmlns/domain/1"
        public static let key = "machine"

        /// Whether both name the same machine of the same home (whatever their configs).
        public func isSameMachine(as other: Owner) -> Bool {
            home == other.home && machine == other.machine
        }

        /// The element as it goes in a domain's XML, in our namespace.
        public var xml: String {
            "<machine:owner xmlns:machine='\(Self.namespace)'>" + children(prefix: "machine:") + "</machine:owner>"
        }

        /// The element as virDomainSetMetadata takes it: without a namespace, which libvirt adds.
        public var elementForSetMetadata: String {
            "<owner>" + children(prefix: "") + "</owner>"
        }

        private func children(prefix p: String) -> String {
            "<\(p)home>\(DomainDefinition.escape(home))</\(p)home><\(p)name>\(DomainDefinition.escape(machine))</\(p)name>"
                + (config.map { "<\(p)config>\($0.base64EncodedString())</\(p)config>" } ?? "")
                + (previous.map { "<\(p)previous>\($0.base64EncodedString())</\(p)previous>" } ?? "")
        }

        /// Reads what `xml` wrote (libvirt hands the element back with its own prefix and quotes).
        /// Plain byte scanning, no Regex: the agent reads this at start, and compiling one
        /// regex mapped 1 MB of _StringProcessing's and _RegexParser's code into it for good.
        public init?(xml: String) {
            let bytes = Array(xml.utf8)
            func value(_ tag: String) -> String? {
                guard let open = Self.element(tag, closing: false, in: bytes, from: 0),
                      let close = Self.element(tag, closing: true, in: bytes, from: open.upperBound)
                else { return nil }
                return DomainDefinition.unescape(String(decoding: bytes[open.upperBound..<close.lowerBound], as: UTF8.self))
            }
            guard let home = value("home"), let machine = value("name") else { return nil }
            self.init(home: home, machine: machine, config: value("config").flatMap { Data(base64Encoded: $0) },
                      previous: value("previous").flatMap { Data(base64Encoded: $0) })
        }

        /// The first tag `<tag>` (or `</tag>`) at or after `start`, with any namespace prefix
        /// (`<machine:tag>`, `<ns0:tag>`): the range of its bytes.
        private static func element(_ tag: String, closing: Bool, in bytes: [UInt8], from start: Int) -> Range<Int>? {
            let name = Array(tag.utf8)
            var index = start
            while let open = bytes[index...].firstIndex(of: UInt8(ascii: "<")) {
                guard let end = bytes[open...].firstIndex(of: UInt8(ascii: ">")) else { return nil }
                var element = bytes[(open + 1)..<end]
                if closing {
                    guard element.first == UInt8(ascii: "/") else { index = open + 1; continue }
                    element = element.dropFirst()
                }
                if let colon = element.firstIndex(of: UInt8(ascii: ":")),
                   element[..<colon].allSatisfy({ $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0 & ~0x20) }) {
                    element = element[(colon + 1)...]
                }
                if element.elementsEqual(name) { return open..<(end + 1) }
                index = open + 1
            }
            return nil
        }
    }
}
