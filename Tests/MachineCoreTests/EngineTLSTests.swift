import Foundation
import MachineCore
import Testing

@Suite struct EngineTLSTests {
    static func openssl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func aNewSetIsSignedByItsOwnCAWhoseKeyIsGoneAndANewSetReplacesIt() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let files = MachineFiles(folder: folder)
        try EngineTLS.make(files, name: "dev")
        #expect(EngineTLS.exists(files))
        let tls = files.tls.path
        for cert in ["server.pem", "cert.pem"] {
            #expect(try Self.openssl(["verify", "-CAfile", tls + "/ca.pem", tls + "/" + cert]).status == 0)
        }
        let server = try Self.openssl(["x509", "-in", tls + "/server.pem", "-noout", "-ext", "subjectAltName,extendedKeyUsage"]).output
        #expect(server.contains("IP Address:127.0.0.1") && server.contains("DNS:localhost") && server.contains("TLS Web Server Authentication"))
        #expect(try Self.openssl(["x509", "-in", tls + "/cert.pem", "-noout", "-ext", "extendedKeyUsage"]).output.contains("TLS Web Client Authentication"))
        // Nothing can sign another certificate, and the keys are the owner's alone.
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: tls)) == ["ca.pem", "cert.pem", "key.pem", "server.pem", "server-key.pem"])
        for key in ["key.pem", "server-key.pem"] {
            #expect((try FileManager.default.attributesOfItem(atPath: tls + "/" + key)[.posixPermissions] as? Int) == 0o600)
        }
        let oldClient = try Data(contentsOf: files.tls.appendingPathComponent("cert.pem"))
        let kept = folder.appendingPathComponent("old-cert.pem")
        try oldClient.write(to: kept)
        try EngineTLS.make(files, name: "dev")
        #expect(try Data(contentsOf: files.tls.appendingPathComponent("cert.pem")) != oldClient)
        #expect(try Self.openssl(["verify", "-CAfile", tls + "/ca.pem", kept.path]).status != 0)
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent(".tls.new").path))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent(".tls.old").path))
    }
}
