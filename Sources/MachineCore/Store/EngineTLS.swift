import FoundationEssentials
import HostOS

/// The engine's TLS endpoint material, docker-machine style, made with `openssl`: a CA of the
/// machine's own, a server certificate for dockerd (127.0.0.1 and localhost) and a client
/// certificate for the host. The CA signs these two and its key is thrown away, so nothing
/// can sign another; `regenerate-certs` makes a new CA, and every earlier certificate is then
/// refused. Keys are 0600 in a 0700 folder.
public enum EngineTLS {
    /// What the guest gets: (name in the guest's engine home, file here).
    public static func serverFiles(_ files: MachineFiles) -> [(String, URL)] {
        zip(GuestContract.engineTLSFiles, ["ca.pem", "server.pem", "server-key.pem"].map { files.tls.appendingPathComponent($0) })
            .map { ($0, $1) }
    }

    public static func exists(_ files: MachineFiles) -> Bool {
        (serverFiles(files).map(\.1) + ["cert.pem", "key.pem"].map { files.tls.appendingPathComponent($0) })
            .allSatisfy { FileManager.default.fileExists(atPath: $0.path) }
    }

    /// Makes a new set in place of the old one (swapped in whole, so a failure leaves the old).
    public static func make(_ files: MachineFiles, name: String) throws(MachineError) {
        let fm = FileManager.default
        let work = files.folder.appendingPathComponent(".tls.new")
        try? fm.removeItem(at: work)
        do {
            try HostPath.makeFolder(work.path, mode: 0o700)
        } catch {
            throw MachineError(error)
        }
        defer { try? fm.removeItem(at: work) }
        func path(_ file: String) -> String { work.appendingPathComponent(file).path }
        func openssl(_ arguments: [String], _ what: String) throws(MachineError) {
            try Subprocess.output(of: ["openssl"] + arguments, timeout: 60, what: what)
        }
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try openssl(["req", "-x509", "-new"] + key + ["-days", "3650", "-subj", "/CN=machine \(name) CA",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                     "-keyout", path("ca-key.pem"), "-out", path("ca.pem")], "making the CA of \(name)'s engine")
        for (cert, keyFile, subject, usage) in [("server.pem", "server-key.pem", "/CN=localhost",
                                                 "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
                                                ("cert.pem", "key.pem", "/CN=machine \(name) client", "extendedKeyUsage=clientAuth\n")] {
            let request = path(cert + ".csr"), extensions = path(cert + ".ext")
            try AtomicFile.save(Data(("keyUsage=critical,digitalSignature,keyEncipherment\n" + usage).utf8), to: URL(fileURLWithPath: extensions), mode: 0o600)
            try openssl(["req", "-new"] + key + ["-subj", subject, "-keyout", path(keyFile), "-out", request],
                        "making the key of \(name)'s \(cert)")
            try openssl(["x509", "-req", "-in", request, "-CA", path("ca.pem"), "-CAkey", path("ca-key.pem"),
                         "-set_serial", "0x" + (0..<16).map { _ in String(cFormat: "%02x", UInt8.random(in: 0...255)) }.joined(),
                         "-days", "3650", "-extfile", extensions, "-out", path(cert)], "signing \(name)'s \(cert)")
            try? fm.removeItem(atPath: request)
            try? fm.removeItem(atPath: extensions)
        }
        try? fm.removeItem(atPath: path("ca-key.pem"))
        for file in ["server-key.pem", "key.pem"] { try? fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path(file)) }
        // The old set, if any, goes aside and the new one takes its place.
        let old = files.folder.appendingPathComponent(".tls.old")
        try? fm.removeItem(at: old)
        do {
            if fm.fileExists(atPath: files.tls.path) { try HostPath.rename(files.tls.path, to: old.path) }
            try HostPath.rename(work.path, to: files.tls.path)
        } catch {
            throw MachineError(error)
        }
        try? fm.removeItem(at: old)
    }
}
