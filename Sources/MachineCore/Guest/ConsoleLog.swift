import FoundationEssentials
import SSH

/// What the guest prints on its serial console for the host (see iso/rootfs/usr/lib/machine).
public enum ConsoleLog {
    /// The console as text so far, never nothing for a byte that is not UTF-8: QEMU writes the
    /// log while it is read, so the read can end inside a character (a share's path with "ü"
    /// printed just after sshd's line made a strict read give up on the whole log, and the boot
    /// failed with "no SSH host key"), and a serial line can carry any byte.
    public static func read(_ url: URL) -> String {
        (try? Data(contentsOf: url)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// The most recent host key the guest printed ("machine-host-key: ssh-ed25519 AAAA...").
    /// The console is written only by the guest's kernel and init, so this is the key to pin.
    public static func hostKey(in text: String) -> HostKey? {
        lastValue(of: GuestContract.hostKeyMarker, in: text).flatMap(HostKey.init(line:))
    }

    /// The most recent host-key fingerprint the guest printed ("SHA256:...").
    public static func hostKeyFingerprint(in text: String) -> String? {
        lastValue(of: GuestContract.hostKeyFingerprintMarker, in: text)
    }

    /// Seconds of guest uptime at which a boot step was logged ("[3.91] machine: sshd ready").
    public static func uptime(ofStep step: String, in text: String) -> Double? {
        let suffix = "] machine: \(step)"
        for line in lines(text).reversed() {
            // The stamp may follow terminal noise on the same line (the BIOS's last words).
            guard line.hasSuffix(suffix),
                  let open = line.dropLast(suffix.count).lastIndex(of: "[")
            else { continue }
            return Double(line[line.index(after: open)..<line.index(line.endIndex, offsetBy: -suffix.count)])
        }
        return nil
    }

    private static func lines(_ text: String) -> [Substring] {
        text.split(whereSeparator: \.isNewline)
    }

    private static func lastValue(of prefix: String, in text: String) -> String? {
        for line in lines(text).reversed() {
            // A line may carry terminal noise before our prefix (e.g. the BIOS's escapes).
            guard let range = line.firstRange(of: prefix) else { continue }
            let value = line[range.upperBound...].trimmed()
            if !value.isEmpty { return value }
        }
        return nil
    }
}
