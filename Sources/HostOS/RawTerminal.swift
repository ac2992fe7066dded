#if canImport(Glibc)
import Glibc
#endif

/// The local terminal in raw mode (no echo, no line editing, no signals from keys), so keys
/// go to the remote PTY as typed; restored afterwards.
public final class RawTerminal {
    private let fd: Int32
    private var saved = termios()
    private var active = false

    public init?(_ fd: Int32) {
        guard isatty(fd) != 0, tcgetattr(fd, &saved) == 0 else { return nil }
        self.fd = fd
        var raw = saved
        cfmakeraw(&raw)
        guard tcsetattr(fd, TCSADRAIN, &raw) == 0 else { return nil }
        active = true
    }

    public func restore() {
        if active { tcsetattr(fd, TCSADRAIN, &saved) }
        active = false
    }

    deinit { restore() }

    public static func size(of fd: Int32) -> (columns: Int, rows: Int) {
        var size = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return (80, 24) }
        return (Int(size.ws_col), Int(size.ws_row))
    }
}
