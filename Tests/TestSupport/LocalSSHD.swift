import Foundation

/// A real OpenSSH sshd on 127.0.0.1 with its own host key and one authorized client key,
/// for testing the libssh2 wrapper against the server the guest runs.
public final class LocalSSHD {
    public let folder: URL
    public let port: Int
    public let hostKeyPublic: String
    public let clientKey: URL
    private let pid: pid_t

    /// `settings`: more sshd_config lines (the guest's sshd runs with ClientAliveInterval=1).
    public init(settings: [String] = []) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("sshd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let hostKey = folder.appendingPathComponent("host_ed25519")
        clientKey = folder.appendingPathComponent("client_ed25519")
        try Self.shell("ssh-keygen -q -t ed25519 -N '' -f '\(hostKey.path)' && ssh-keygen -q -t ed25519 -N '' -f '\(clientKey.path)'")
        hostKeyPublic = try String(contentsOf: URL(fileURLWithPath: hostKey.path + ".pub"), encoding: .utf8)
        port = try Self.freePort()
        let config = """
            ListenAddress 127.0.0.1
            Port \(port)
            HostKey \(hostKey.path)
            AuthorizedKeysFile \(clientKey.path).pub
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PermitRootLogin prohibit-password
            StrictModes no
            UsePAM no
            PidFile none
            Subsystem sftp /usr/lib/openssh/sftp-server
            """ + settings.map { "\n" + $0 }.joined()
        let configFile = folder.appendingPathComponent("sshd_config")
        try config.write(to: configFile, atomically: true, encoding: .utf8)
        // sshd refuses to start without its privilege-separation folder.
        try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        pid = try Self.spawn(["/usr/sbin/sshd", "-D", "-f", configFile.path])
        try waitForListener()
    }

    deinit {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        try? FileManager.default.removeItem(at: folder)
    }

    public var user: String { ProcessInfo.processInfo.environment["USER"] ?? "root" }

    private func waitForListener() throws {
        for _ in 0..<100 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            close(fd)
            if connected { return }
            usleep(50_000)
        }
        throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "sshd did not start listening"])
    }

    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                _ = bind(fd, pointer, length)
                return getsockname(fd, pointer, &length)
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Runs a shell command and returns its stdout (through a file). Uses posix_spawn and
    /// waitpid: Foundation's Process.waitUntilExit never returned here while sshd, another
    /// child, was running.
    @discardableResult
    public static func shell(_ command: String) throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("out-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: output) }
        let pid = try spawn(["/bin/sh", "-c", "(\(command)) </dev/null >'\(output.path)'"])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else {
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "\(command) failed"])
        }
        return try String(contentsOf: output, encoding: .utf8)
    }

    static func spawn(_ argv: [String]) throws -> pid_t {
        var pid: pid_t = 0
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        let rc = posix_spawn(&pid, argv[0], nil, nil, &cArgs, environ)
        guard rc == 0 else {
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "cannot start \(argv[0]): \(rc)"])
        }
        return pid
    }
}
