import Foundation
import Testing
import Virt

/// Domain states against libvirt's built-in test driver. Each test has a node of its own (a
/// test:///FILE connection), since test:///default is one state shared by the whole process.
@Suite struct DomainTests {
    func started() throws -> (Connection, Domain) {
        let node = FileManager.default.temporaryDirectory.appendingPathComponent("virt-node-\(UUID().uuidString).xml")
        try Data("<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>1</cores><threads>1</threads></cpu></node>".utf8).write(to: node)
        defer { try? FileManager.default.removeItem(at: node) }
        let connection = try Connection(uri: "test://\(node.path)")
        let domain = try connection.define(xml: "<domain type='test'><name>m</name><memory>1024</memory><os><type>hvm</type></os></domain>")
        try domain.start()
        return (connection, domain)
    }

    @Test func statesCarryLibvirtsReason() throws {
        let (_, domain) = try started()
        #expect(try domain.status() == Domain.Status(state: .running, reason: "booted"))
        #expect(try domain.isActive())
        try domain.suspend()
        #expect(try domain.status() == Domain.Status(state: .paused, reason: "user"))
        try domain.resume()
        #expect(try domain.status() == Domain.Status(state: .running, reason: "unpaused"))
        try domain.destroy()
        #expect(try domain.status() == Domain.Status(state: .stopped, reason: "destroyed"))
        #expect(try !domain.isActive())
        try domain.undefine()
    }

    @Test func noMetadataIsNilAndLibvirtsOwnWordsReachTheError() throws {
        let (_, domain) = try started()
        // libvirt answers "no such metadata" with an error; read right, it means nil. (An error
        // message that called libvirt, for the domain's name, once wiped that error first.)
        #expect(try domain.metadata(namespace: "https://machine.invalid/xmlns/domain/1") == nil)
        #expect(try domain.metadata(namespace: "https://machine.invalid/xmlns/domain/1", persistent: true) == nil)
        do {
            try domain.start()
            Issue.record("a running domain started again")
        } catch {
            #expect(error.code != 0 && !error.message.contains("unknown libvirt error"), "\(error)")
            #expect(error.operation == "starting m")
        }
    }

    @Test func aRunningDomainUndefinedBecomesTransientAndGoesAwayWhenDestroyed() throws {
        let (connection, domain) = try started()
        try domain.undefine()
        #expect(try connection.domain(named: domain.name) != nil)
        try domain.destroy()
        #expect(try connection.domain(named: domain.name) == nil)
    }
}
