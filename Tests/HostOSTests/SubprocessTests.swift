import Foundation
import HostOS
import Testing

@Suite struct SubprocessTests {
    @Test func outputAndStatusComeBack() throws {
        let result = try Subprocess.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        #expect(result.status == 3 && !result.timedOut)
        #expect(result.output == "out\nerr\n")
    }

    @Test func captureReadsStdoutAloneWithTheGivenEnvironmentAndStatus() throws {
        // More than a pipe holds (64 KiB), so the reading must go on while the child writes.
        let run = try Subprocess.capture(["sh", "-c", "echo \"$GREETING\"; echo hidden >&2; head -c 200000 /dev/zero; exit 4"],
                                         environment: ["GREETING": "hello there", "PATH": "/usr/bin:/bin"], showErrors: false)
        #expect(run.status == 4)
        #expect(run.output.count == "hello there\n".utf8.count + 200_000)
        #expect(run.output.prefix(12) == Data("hello there\n".utf8))
        // Without an environment of its own, the child has this process's.
        setenv("MACHINE_CAPTURE_TEST", "inherited", 1)
        let inherited = try Subprocess.capture(["sh", "-c", "printf %s \"$MACHINE_CAPTURE_TEST\""], showErrors: false)
        #expect(String(decoding: inherited.output, as: UTF8.self) == "inherited" && inherited.status == 0)
        #expect(try Subprocess.capture(["sh", "-c", "kill -9 $$"], showErrors: false).status == 137)
    }

    @Test func aProgramThatRunsTooLongIsKilled() throws {
        let started = Date()
        let result = try Subprocess.run(["sleep", "30"], timeout: 0.3)
        #expect(result.timedOut && result.status == -1)
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func aMissingProgramIsASystemErrorWithErrno() {
        #expect(throws: SystemError("run no-such-program-here", code: ENOENT)) {
            try Subprocess.run(["no-such-program-here"])
        }
    }

    @Test func checkSaysWhatFailedWithTheOutput() {
        do {
            try Subprocess.check(["sh", "-c", "echo broken >&2; exit 1"], what: "making the seed image")
            Issue.record("no error")
        } catch {
            #expect(error.code == 0)
            #expect(error.description == "making the seed image failed: sh exited 1: broken")
        }
    }

    @Test func theChildInheritsNoDescriptorOfOurs() throws {
        // Without O_CLOEXEC, as a careless library would; at a high number, since `ls` itself
        // opens the folder it lists at the child's lowest free one (3).
        let opened = open("/dev/null", O_RDONLY)
        let fd = fcntl(opened, F_DUPFD, 200)
        close(opened)
        defer { close(fd) }
        #expect(fd >= 200)
        let result = try Subprocess.run(["sh", "-c", "ls /proc/self/fd"])
        #expect(!result.output.split(separator: "\n").contains(Substring("\(fd)")))
    }
}

@Suite struct AtomicFileTests {
    @Test func writesWithTheModeAndReplacesWhole() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("atomic-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("config.json")
        try AtomicFile.write(Data("first, longer".utf8), to: file, mode: 0o600)
        try AtomicFile.write(Data("second".utf8), to: file, mode: 0o600)
        #expect(try Data(contentsOf: file) == Data("second".utf8))
        let mode = (try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int) ?? 0
        #expect(mode == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["config.json"])
    }

    @Test func aFolderThatIsNotThereIsAnErrnoError() {
        #expect(throws: SystemError.self) {
            try AtomicFile.write(Data(), to: URL(fileURLWithPath: "/nonexistent/folder/file"))
        }
    }
}
