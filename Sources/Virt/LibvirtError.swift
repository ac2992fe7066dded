import CLibvirt

/// A failure reported by libvirt, copied from libvirt's per-thread last error right after the
/// failing call (later calls would overwrite it).
public struct LibvirtError: Error, CustomStringConvertible, Sendable {
    /// libvirt's `virErrorNumber` (e.g. VIR_ERR_NO_CONNECT = 38).
    public let code: Int32
    /// libvirt's `virErrorDomain`: which part of libvirt raised it.
    public let domain: Int32
    /// libvirt's own text.
    public let message: String
    /// What we were doing, in the user's words ("connecting to qemu:///system").
    public let operation: String

    public var description: String { "\(operation): \(message)" }

    /// Copies the calling thread's last libvirt error and resets it. `operation` is worked out
    /// only after the copy: words like "saving \(domain.name)" call libvirt, and every libvirt
    /// call clears the last error first, which left "unknown libvirt error" in its place.
    static func last(_ operation: @autoclosure () -> String) -> LibvirtError {
        var raw = virError()
        guard lv.virCopyLastError(&raw) >= 0 else {
            return LibvirtError(code: 0, domain: 0, message: "unknown libvirt error", operation: operation())
        }
        defer { lv.virResetError(&raw) }
        let text = raw.message.map { String(cString: $0) } ?? "unknown libvirt error"
        let code = raw.code, domain = raw.domain
        return LibvirtError(code: code, domain: domain, message: text, operation: operation())
    }

    /// The code of an error that is not libvirt's: its client library could not be opened
    /// (libvirt's own codes are not negative).
    public static let libraryUnusable: Int32 = -1

    public var isConnectionFailure: Bool {
        code == Int32(VIR_ERR_NO_CONNECT.rawValue) || code == Int32(VIR_ERR_SYSTEM_ERROR.rawValue)
    }
}

/// libvirt prints every error to stderr by default; we report errors ourselves, once.
let silenceLibvirtPrinter: Void = {
    lv.virSetErrorFunc(nil) { _, _ in }
}()
