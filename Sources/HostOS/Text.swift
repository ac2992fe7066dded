#if canImport(Glibc)
import Glibc
#endif

// The few text operations machine used from Foundation beyond FoundationEssentials. All of
// Foundation (and with it ICU, about 40 MB of the static binary) came in for these alone.

extension String {
    /// printf-style formatting through the C library (numbers only: %d, %ld, %x, %f and their
    /// widths and precisions; a string goes in by interpolation around the call).
    public init(cFormat format: String, _ arguments: CVarArg...) {
        // vsnprintf says how long the whole text is; a longer one is formatted again in full.
        let first = Self.printed(format, arguments, capacity: 256)
        self = first.needed < 256 ? first.text : Self.printed(format, arguments, capacity: first.needed + 1).text
    }

    private static func printed(_ format: String, _ arguments: [CVarArg], capacity: Int) -> (text: String, needed: Int) {
        withVaList(arguments) { list in
            var buffer = [CChar](repeating: 0, count: capacity)
            let needed = Swift.max(0, Int(vsnprintf(&buffer, capacity, format, list)))
            return (String(decoding: buffer.prefix(Swift.min(needed, capacity - 1)).map { UInt8(bitPattern: $0) }, as: UTF8.self), needed)
        }
    }
}

extension StringProtocol {
    /// Without leading and trailing white space (spaces, tabs and line ends).
    public func trimmed() -> String {
        trimming(where: \.isWhitespace)
    }

    /// Without leading and trailing runs of `character`.
    public func trimming(_ character: Character) -> String {
        trimming(where: { $0 == character })
    }

    private func trimming(where drop: (Character) -> Bool) -> String {
        String(self.drop(while: drop).reversed().drop(while: drop).reversed())
    }
}
