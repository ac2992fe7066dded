import FoundationEssentials

/// Text in a domain's XML: what may go in, escaped on the way in and unescaped on the way back.
extension DomainDefinition {
    /// The reverse of `escape`, for text libvirt hands back (it may use &#39; or &quot;). One
    /// pass over the bytes: the string searching of `replacing` lives in _StringProcessing,
    /// whose code the agent would then map for this alone (see `Owner.init(xml:)`).
    static func unescape(_ text: String) -> String {
        let entities: [(name: [UInt8], plain: UInt8)] = [
            (Array("lt".utf8), UInt8(ascii: "<")), (Array("gt".utf8), UInt8(ascii: ">")),
            (Array("amp".utf8), UInt8(ascii: "&")), (Array("apos".utf8), UInt8(ascii: "'")),
            (Array("#39".utf8), UInt8(ascii: "'")), (Array("quot".utf8), UInt8(ascii: "\"")),
            (Array("#34".utf8), UInt8(ascii: "\"")),
        ]
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "&"),
               let end = bytes[index...].prefix(6).firstIndex(of: UInt8(ascii: ";")),
               let entity = entities.first(where: { $0.name.elementsEqual(bytes[(index + 1)..<end]) }) {
                out.append(entity.plain)
                index = end + 1
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// XML text and attribute escaping. Control characters cannot appear in XML 1.0 at all,
    /// so callers reject them before (see MachineName and the path checks).
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for ch in text.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "'": out += "&apos;"
            case "\"": out += "&quot;"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// True if the path can be written into a domain definition at all.
    public static func isRepresentable(path: String) -> Bool {
        path.hasPrefix("/") && !path.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }
    }
}
