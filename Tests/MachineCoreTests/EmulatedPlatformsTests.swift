import Foundation
import MachineCore
import Testing

@Suite struct EmulatedPlatformsTests {
    @Test func allNoneAndListsAreRead() throws {
        #expect(try EmulatedPlatforms.parse("all") == nil)
        #expect(try EmulatedPlatforms.parse(" ALL ") == nil)
        #expect(try EmulatedPlatforms.parse("none") == [])
        #expect(try EmulatedPlatforms.parse("arm64, linux/riscv64,arm64") == ["linux/arm64", "linux/riscv64"])
        #expect(try EmulatedPlatforms.parse("linux/arm/v7") == ["linux/arm/v7"])
    }

    @Test(arguments: ["", ",", "arm65", "linux/amd64", "all,none", "arm64,none", "linux/arm"])
    func anythingElseIsAUsageErrorThatNamesThePlatforms(text: String) {
        #expect {
            _ = try EmulatedPlatforms.parse(text)
        } throws: { error in
            guard let error = error as? MachineError else { return false }
            return error.kind == .usage && (error.hint ?? "").contains("linux/arm64")
        }
    }

    @Test func theSettingReadsBackAsWritten() throws {
        for text in ["all", "none", "linux/arm64,linux/s390x"] {
            #expect(EmulatedPlatforms.describe(try EmulatedPlatforms.parse(text)) == text)
        }
    }

    @Test func aConfigFromBeforeEmulatesEveryPlatformAndTheSettingIsKept() throws {
        let old = #"{"name":"m","cpus":1,"memoryMiB":512,"diskGiB":1,"sshPort":2222,"accel":"auto","created":"2026-01-01T00:00:00Z"}"#
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        #expect(try decoder.decode(MachineConfig.self, from: Data(old.utf8)).platforms == nil)
        var config = MachineConfig(name: "m", sshPort: 2222)
        config.platforms = []
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        #expect(try decoder.decode(MachineConfig.self, from: encoder.encode(config)).platforms == [])
    }

    @Test func theGuestsCheckIsRead() {
        var info = PlatformsInfo(setting: nil, emulation: "")
        info.read(check: "emulation\ton\nlinux/arm64\tworks\nlinux/riscv64\tfailing\tits handler is disabled\n")
        #expect(info.emulation == "on")
        #expect(info.emulated == ["linux/arm64": "works", "linux/riscv64": "failing: its handler is disabled"])
        #expect(info.native == "linux/amd64" && info.setting == "all")

        var off = PlatformsInfo(setting: [], emulation: "")
        off.read(check: "emulation\toff\n")
        #expect(off.emulation == "off" && off.emulated.isEmpty && off.setting == "none")

        var unavailable = PlatformsInfo(setting: nil, emulation: "")
        unavailable.read(check: "emulation\tunavailable\tthe guest's kernel has no binfmt_misc\n")
        #expect(unavailable.emulation == "unavailable: the guest's kernel has no binfmt_misc")
    }

    /// The answer is the guest's: platforms machine does not know, other words, control
    /// characters and a missing first line are left out, not shown.
    @Test func aHostileAnswerIsCutDown() {
        var info = PlatformsInfo(setting: nil, emulation: "")
        info.read(check: "emulation\ton\nlinux/evil\tworks\nlinux/arm64\tpwned\nlinux/s390x\tfailing\t\u{1b}[31mred\u{7}\n")
        #expect(info.emulated == ["linux/s390x": "failing: [31mred"])

        var garbage = PlatformsInfo(setting: nil, emulation: "")
        garbage.read(check: "linux/arm64\tworks\n")
        #expect(garbage.emulation.hasPrefix("not checked") && garbage.emulated.isEmpty)
    }
}
