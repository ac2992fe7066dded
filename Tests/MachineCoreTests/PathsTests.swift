import Foundation
import MachineCore
import SSH
import Testing

@Suite struct PathsTests {
    @Test func eachHomeHasItsOwnShortStableID() {
        let first = Paths(environment: ["MACHINE_HOME": "/home/ada/.machine"])
        let second = Paths(environment: ["MACHINE_HOME": "/home/ada/src/machine/.e2e-home"])
        #expect(first.homeID == Paths(environment: ["MACHINE_HOME": "/home/ada/.machine/"]).homeID)
        #expect(first.homeID != second.homeID)
        #expect(first.homeID.count == 8 && first.homeID.allSatisfy(\.isHexDigit))
        #expect(MachineName.domainName("default", homeID: first.homeID) == "machine-default-\(first.homeID)")
    }

    @Test func homeAndCacheFollowTheEnvironment() {
        let defaults = Paths(environment: ["HOME": "/home/ada"])
        #expect(defaults.home.path == "/home/ada/.machine")
        #expect(defaults.cache.path == "/home/ada/.machine/cache")
        let custom = Paths(environment: ["HOME": "/home/ada", "MACHINE_HOME": "/m", "MACHINE_CACHE": "/c"])
        #expect(custom.home.path == "/m")
        #expect(custom.images.path == "/c/images")
        #expect(custom.engineBundles.path == "/c/engine")
        // `MACHINE_HOME= machine ...` is the default home, as in the shell's ${VAR:-default},
        // not the current folder.
        let empty = Paths(environment: ["HOME": "/home/ada", "MACHINE_HOME": "", "MACHINE_CACHE": ""])
        #expect(empty.home.path == "/home/ada/.machine")
        #expect(empty.cache.path == "/home/ada/.machine/cache")
    }
}
