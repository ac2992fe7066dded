import Testing
import Virt

@Suite struct ConnectionTests {
    @Test func testDriverAnswersAndListsItsDomain() throws {
        let connection = try Connection(uri: "test:///default")
        #expect(try connection.hypervisorType() == "TEST")
        #expect(try connection.domainNames() == ["test"])
        #expect(try connection.libvirtVersion().split(separator: ".").count == 3)
    }

    @Test func unknownDriverGivesLibvirtsOwnError() {
        do {
            _ = try Connection(uri: "nosuchdriver:///x")
            Issue.record("connecting to a made-up driver succeeded")
        } catch {
            #expect(error.code != 0)
            #expect(error.operation == "connecting to nosuchdriver:///x")
            #expect(!error.message.isEmpty)
            #expect(error.description.contains("nosuchdriver:///x"))
        }
    }
}
