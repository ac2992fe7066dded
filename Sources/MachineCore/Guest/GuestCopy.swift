import FoundationEssentials
import HostOS
import SSH
#if canImport(Glibc)
import Glibc  // files copied by descriptor: openat(2) with O_NOFOLLOW so a link cannot redirect a write, fsync
#endif

/// `machine cp`: one file between host and guest over SFTP, bytes and permission bits kept.
/// Both directions write to a temporary name and rename it into place, so a half-copied
/// file never appears. On the host, no symlink inside a shared folder is followed (the guest
/// may plant one there): see HostPathWalker.
public struct GuestCopy {
    public let sftp: SFTP
    public let guest: GuestSSH
    public let walker: HostPathWalker

    public init(session: Session, guest: GuestSSH, walker: HostPathWalker) throws(MachineError) {
        self.walker = walker
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

    /// Host file -> guest path (a folder gets the file's name inside it). A symlink inside a
    /// shared folder is never read through: the guest may have planted it.
    public func upload(_ hostPath: String, to guestPath: String) throws(MachineError) {
        let entry = try locate(hostPath)
        switch entry.kind {
        case .missing:
            throw MachineError("\(hostPath) does not exist")
        case .sharedSymlink:
            throw MachineError("not copying \(entry.path): it is a symlink inside a folder shared with a machine, which may have put it there",
                               hint: "copy the file it points to by its own path")
        case .regularFile:
            break
        case .directory, .other:
            throw MachineError("\(hostPath) is not a regular file", hint: "machine cp copies one file; for a folder use `tar -C DIR -c . | machine ssh NAME -- tar -C DEST -x`")
        }
        let fd = openat(entry.folder, entry.name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw MachineError("cannot read \(entry.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        // Checked again on the open file: it may have been swapped since the walk.
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw MachineError("\(entry.path) is not a regular file")
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

    /// Guest file -> host path (a host folder gets the file's name inside it). A symlink
    /// inside a shared folder at the destination is replaced, never written through.
    public func download(_ guestPath: String, to hostPath: String) throws(MachineError) {
        guard let remote = try attributes(guestPath) else {
            throw MachineError("\(guest.name):\(guestPath) does not exist")
        }
        guard remote.isRegularFile else {
            throw MachineError("\(guest.name):\(guestPath) is not a regular file", hint: "machine cp copies one file; for a folder use `machine ssh NAME -- tar -C DIR -c . | tar -x`")
        }
        var entry = try locate(hostPath)
        if entry.kind == .directory {
            entry = try locate(HostPathWalker.join(entry.path, URL(fileURLWithPath: guestPath).lastPathComponent))
        }
        switch entry.kind {
        case .missing, .regularFile, .sharedSymlink:
            break
        case .directory:
            throw MachineError("\(entry.path) is a folder; not replacing it with a file")
        case .other:
            throw MachineError("\(entry.path) is not a regular file; not writing into it")
        }
        let temp = ".\(entry.name).machine-cp.\(getpid())"
        let fd = openat(entry.folder, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw MachineError("cannot write in \(entry.folderPath): \(String(cString: strerror(errno)))")
        }
        do {
            let mode = try sftp.download(guestPath, to: fd)
            fchmod(fd, mode_t(mode))
            fsync(fd)
            close(fd)
        } catch {
            close(fd)
            unlinkat(entry.folder, temp, 0)
            throw MachineError("copying \(guest.name):\(guestPath) to \(entry.path) failed: \(error)")
        }
        guard renameat(entry.folder, temp, entry.folder, entry.name) == 0 else {
            let reason = String(cString: strerror(errno))
            unlinkat(entry.folder, temp, 0)
            throw MachineError("cannot put the copy at \(entry.path): \(reason)")
        }
    }

    private func attributes(_ path: String) throws(MachineError) -> SFTP.Attributes? {
        do {
            return try sftp.attributes(path)
        } catch {
            throw MachineError("cannot look at \(guest.name):\(path): \(error)")
        }
    }

    /// The host path, walked without following a symlink inside a share.
    private func locate(_ path: String) throws(MachineError) -> HostPathWalker.Entry {
        try onHost { () throws(SystemError) in try walker.locate(path) }
    }
}
