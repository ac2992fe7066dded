import Foundation
import SSH
#if canImport(Glibc)
import Glibc
#endif

/// `machine cp`: one file between host and guest over SFTP, bytes and permission bits kept.
/// Both directions write to a temporary name and rename it into place, so a half-copied
/// file never appears; on the host, nothing is ever written through a symlink (the guest may
/// plant one in a shared folder): an existing symlink at the destination is replaced.
public struct GuestCopy {
    public let sftp: SFTP
    public let guest: GuestSSH

    public init(session: Session, guest: GuestSSH) throws(MachineError) {
        do {
            sftp = try SFTP(session: session)
        } catch {
            throw GuestSSH.explain(error, name: guest.name, files: guest.files)
        }
        self.guest = guest
    }

    /// A `cp` operand: a host path, or NAME:PATH in a machine.
    public enum Location: Equatable, Sendable {
        case host(String)
        case guest(machine: String, path: String)

        /// NAME:PATH when what comes before the first ':' is a valid machine name; anything
        /// else (./a:b, /x:y) is a host path.
        public init(_ text: String) {
            if let colon = text.firstIndex(of: ":") {
                let name = String(text[..<colon])
                if (try? MachineName.validate(name)) != nil {
                    let path = String(text[text.index(after: colon)...])
                    self = .guest(machine: name, path: path.isEmpty ? "." : path)
                    return
                }
            }
            self = .host(text)
        }
    }

    /// Host file -> guest path (a folder gets the file's name inside it).
    public func upload(_ hostPath: String, to guestPath: String) throws(MachineError) {
        let fd = open(hostPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MachineError("cannot read \(hostPath): \(String(cString: strerror(errno)))", exitCode: 1) }
        defer { close(fd) }
        var info = stat()
        fstat(fd, &info)
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw MachineError("\(hostPath) is not a regular file", hint: "machine cp copies one file; for a folder use `tar -C DIR -c . | machine ssh NAME -- tar -C DEST -x`", exitCode: 1)
        }
        var destination = guestPath
        if let existing = try attributes(guestPath), existing.isDirectory {
            destination = (guestPath.hasSuffix("/") ? guestPath : guestPath + "/") + URL(fileURLWithPath: hostPath).lastPathComponent
        }
        let temp = destination + ".machine-cp.\(getpid())"
        do {
            try sftp.upload(from: fd, to: temp, permissions: UInt32(info.st_mode) & 0o7777)
            try sftp.rename(temp, to: destination)
        } catch {
            sftp.remove(temp)
            throw MachineError("copying \(hostPath) to \(guest.name):\(destination) failed: \(error)")
        }
    }

    /// Guest file -> host path (a host folder gets the file's name inside it).
    public func download(_ guestPath: String, to hostPath: String) throws(MachineError) {
        guard let remote = try attributes(guestPath) else {
            throw MachineError("\(guest.name):\(guestPath) does not exist")
        }
        guard remote.isRegularFile else {
            throw MachineError("\(guest.name):\(guestPath) is not a regular file", hint: "machine cp copies one file; for a folder use `machine ssh NAME -- tar -C DIR -c . | tar -x`")
        }
        var destination = hostPath
        var info = stat()
        // lstat: a symlink at the destination is replaced, never followed.
        if lstat(hostPath, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
            destination = URL(fileURLWithPath: hostPath).appendingPathComponent(URL(fileURLWithPath: guestPath).lastPathComponent).path
        }
        let folder = URL(fileURLWithPath: destination).deletingLastPathComponent().path
        let temp = URL(fileURLWithPath: folder).appendingPathComponent(".\(URL(fileURLWithPath: destination).lastPathComponent).machine-cp.\(getpid())").path
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw MachineError("cannot write in \(folder): \(String(cString: strerror(errno)))")
        }
        do {
            let mode = try sftp.download(guestPath, to: fd)
            fchmod(fd, mode_t(mode))
            fsync(fd)
            close(fd)
        } catch {
            close(fd)
            unlink(temp)
            throw MachineError("copying \(guest.name):\(guestPath) to \(destination) failed: \(error)")
        }
        guard rename(temp, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temp)
            throw MachineError("cannot put the copy at \(destination): \(reason)")
        }
    }

    private func attributes(_ path: String) throws(MachineError) -> SFTP.Attributes? {
        do {
            return try sftp.attributes(path)
        } catch {
            throw MachineError("cannot look at \(guest.name):\(path): \(error)")
        }
    }
}
