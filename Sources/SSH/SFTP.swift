import CLibSSH2
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// An SFTP subsystem on a session (blocking mode). Keeps its session alive.
public final class SFTP {
    let raw: OpaquePointer
    public let session: Session

    public init(session: Session) throws(SSHError) {
        guard let raw = libssh2_sftp_init(session.raw) else {
            throw SSHError.last(session.raw, libssh2_session_last_errno(session.raw), "starting SFTP on \(session.peer)")
        }
        self.raw = raw
        self.session = session
    }

    deinit {
        libssh2_sftp_shutdown(raw)
    }

    /// What a remote path is: its type and permission bits.
    public struct Attributes: Sendable {
        public let mode: UInt32
        public let size: UInt64
        public var isDirectory: Bool { mode & UInt32(LIBSSH2_SFTP_S_IFMT) == UInt32(LIBSSH2_SFTP_S_IFDIR) }
        public var isRegularFile: Bool { mode & UInt32(LIBSSH2_SFTP_S_IFMT) == UInt32(LIBSSH2_SFTP_S_IFREG) }
        public var permissions: UInt32 { mode & 0o7777 }
    }

    /// stat (following links on the server, which only reach the server's own files).
    public func attributes(_ path: String) throws(SSHError) -> Attributes? {
        var attrs = LIBSSH2_SFTP_ATTRIBUTES()
        let rc = libssh2_sftp_stat_ex(raw, path, UInt32(path.utf8.count), LIBSSH2_SFTP_STAT, &attrs)
        if rc == LIBSSH2_ERROR_SFTP_PROTOCOL && libssh2_sftp_last_error(raw) == LIBSSH2_FX_NO_SUCH_FILE { return nil }
        guard rc == 0 else { throw error(rc, "looking at \(path)") }
        return Attributes(mode: UInt32(attrs.permissions), size: attrs.filesize)
    }

    /// Copies the open local file `source` to `path`, replacing it, with these permission
    /// bits (set exactly, whatever the server's umask). `progress` gets the bytes sent so far.
    public func upload(from source: Int32, to path: String, permissions: UInt32,
                       progress: (UInt64) -> Void = { _ in }) throws(SSHError) {
        guard let handle = libssh2_sftp_open_ex(
            raw, path, UInt32(path.utf8.count),
            UInt(LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC), Int(permissions), LIBSSH2_SFTP_OPENFILE)
        else {
            throw error(libssh2_session_last_errno(session.raw), "creating \(path)")
        }
        defer { libssh2_sftp_close_handle(handle) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 1)
        defer { buffer.deallocate() }
        var sent: UInt64 = 0
        while true {
            let count = Glibc.read(source, buffer.baseAddress, buffer.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw SSHError(kind: .system, code: errno, message: String(cString: strerror(errno)), operation: "reading the file to upload")
            }
            if count == 0 { break }
            var offset = 0
            while offset < count {
                let written = libssh2_sftp_write(handle, buffer.baseAddress!.advanced(by: offset).assumingMemoryBound(to: CChar.self), count - offset)
                guard written >= 0 else { throw error(Int32(written), "writing \(path)") }
                offset += written
            }
            sent += UInt64(count)
            progress(sent)
        }
        var attrs = LIBSSH2_SFTP_ATTRIBUTES()
        attrs.flags = UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS)
        attrs.permissions = UInt(permissions)
        let rc = libssh2_sftp_fstat_ex(handle, &attrs, 1)
        guard rc == 0 else { throw error(rc, "setting the mode of \(path)") }
    }

    /// Copies the remote regular file `path` into the open local file `destination`; returns
    /// its permission bits.
    public func download(_ path: String, to destination: Int32,
                         progress: (UInt64) -> Void = { _ in }) throws(SSHError) -> UInt32 {
        guard let handle = libssh2_sftp_open_ex(raw, path, UInt32(path.utf8.count), UInt(LIBSSH2_FXF_READ), 0, LIBSSH2_SFTP_OPENFILE) else {
            throw error(libssh2_session_last_errno(session.raw), "opening \(path)")
        }
        defer { libssh2_sftp_close_handle(handle) }
        var attrs = LIBSSH2_SFTP_ATTRIBUTES()
        let rc = libssh2_sftp_fstat_ex(handle, &attrs, 0)
        guard rc == 0 else { throw error(rc, "looking at \(path)") }
        let mode = UInt32(attrs.permissions)
        guard mode & UInt32(LIBSSH2_SFTP_S_IFMT) == UInt32(LIBSSH2_SFTP_S_IFREG) else {
            throw SSHError(kind: .remoteCommand, code: 0, message: "not a regular file", operation: "copying \(path)")
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 1)
        defer { buffer.deallocate() }
        var received: UInt64 = 0
        while true {
            let count = libssh2_sftp_read(handle, buffer.baseAddress!.assumingMemoryBound(to: CChar.self), buffer.count)
            guard count >= 0 else { throw error(Int32(count), "reading \(path)") }
            if count == 0 { break }
            var offset = 0
            while offset < count {
                let written = Glibc.write(destination, buffer.baseAddress!.advanced(by: offset), count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw SSHError(kind: .system, code: errno, message: String(cString: strerror(errno)), operation: "writing the downloaded copy of \(path)")
                }
                offset += written
            }
            received += UInt64(count)
            progress(received)
        }
        return mode & 0o7777
    }

    /// Renames on the server, replacing a file at `to`. OpenSSH's sftp-server speaks SFTP v3,
    /// whose rename refuses an existing target, and libssh2 1.10 cannot send OpenSSH's
    /// posix-rename extension; so when the rename fails and something other than a folder
    /// is at `to` (a link is not followed), that is removed and the rename tried again. Not
    /// atomic: for a moment there is no file at `to`.
    public func rename(_ from: String, to: String) throws(SSHError) {
        let flags = Int(LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC | LIBSSH2_SFTP_RENAME_NATIVE)
        let rename = { libssh2_sftp_rename_ex(self.raw, from, UInt32(from.utf8.count), to, UInt32(to.utf8.count), flags) }
        var rc = rename()
        if rc == LIBSSH2_ERROR_SFTP_PROTOCOL && libssh2_sftp_last_error(raw) == LIBSSH2_FX_FAILURE {
            var existing = LIBSSH2_SFTP_ATTRIBUTES()
            if libssh2_sftp_stat_ex(raw, to, UInt32(to.utf8.count), LIBSSH2_SFTP_LSTAT, &existing) == 0,
               UInt32(existing.permissions) & UInt32(LIBSSH2_SFTP_S_IFMT) != UInt32(LIBSSH2_SFTP_S_IFDIR) {
                remove(to)
                rc = rename()
            }
        }
        guard rc == 0 else { throw error(rc, "renaming \(from) to \(to)") }
    }

    public func remove(_ path: String) {
        libssh2_sftp_unlink_ex(raw, path, UInt32(path.utf8.count))
    }

    private func error(_ rc: Int32, _ operation: String) -> SSHError {
        if rc == LIBSSH2_ERROR_SFTP_PROTOCOL {
            let status = libssh2_sftp_last_error(raw)
            let text: String
            switch status {
            case LIBSSH2_FX_NO_SUCH_FILE: text = "no such file or folder"
            case LIBSSH2_FX_PERMISSION_DENIED: text = "permission denied"
            case LIBSSH2_FX_FAILURE: text = "failed (a folder, or the disk is full?)"
            case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: text = "no space left on the disk"
            default: text = "SFTP status \(status)"
            }
            return SSHError(kind: .remoteCommand, code: Int32(truncatingIfNeeded: status), message: text, operation: operation)
        }
        return SSHError.last(session.raw, rc, operation)
    }
}
