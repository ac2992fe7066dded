#if canImport(Glibc)
import Glibc
#endif

// The few text operations machine used from Foundation beyond FoundationEssentials. All of
// Foundation (and with it ICU, about 40 MB of the static binary) came in for these alone.

extension String {
    /// printf-style formatting through the C library (numbers only: %d, %ld, %x, %f and their
    /// widths and precisions; a string goes in by interpolation around the call).
    public init(cFormat format: String, _ arguments: CVarArg...) {
        self = withVaList(arguments) { list in
            var buffer = [CChar](repeating: 0, count: 256)
            let needed = Int(vsnprintf(&buffer, buffer.count, format, list))
            guard needed >= buffer.count else { return String(cString: buffer) }
            return withVaList(arguments) { again in
                buffer = [CChar](repeating: 0, count: needed + 1)
                vsnprintf(&buffer, buffer.count, format, again)
                return String(cString: buffer)
            }
        }
    }
}

extension StringProtocol {
    /// Without leading and trailing white space (spaces, tabs and line ends).
    public func trimmed() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }

    /// Without leading and trailing runs of `character`.
    public func trimming(_ character: Character) -> String {
        String(drop(while: { $0 == character }).reversed().drop(while: { $0 == character }).reversed())
    }
}
