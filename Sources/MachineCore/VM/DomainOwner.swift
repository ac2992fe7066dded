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
        public init?(xml: String) {
            func value(_ tag: String) -> String? {
                guard let opening = try? Regex("<[A-Za-z0-9_]*:?\(tag)>"), let closing = try? Regex("</[A-Za-z0-9_]*:?\(tag)>"),
                      let open = xml.firstRange(of: opening), let close = xml[open.upperBound...].firstRange(of: closing)
                else { return nil }
                return DomainDefinition.unescape(String(xml[open.upperBound..<close.lowerBound]))
            }
            guard let home = value("home"), let machine = value("name") else { return nil }
            self.init(home: home, machine: machine, config: value("config").flatMap { Data(base64Encoded: $0) },
                      previous: value("previous").flatMap { Data(base64Encoded: $0) })
        }
    }
}
