import FoundationEssentials
import Glibc
import HostOS
import HostAgent
import MachineCore

/// Fuzz targets for every parser on the host that reads bytes the guest controls: its DNS
/// queries, the engine's event stream, container list and HTTP heads, its console (host key,
/// boot steps), and the answers of the host's commands in it (df, /proc/stat, platforms
/// check). Each target checks what the code that uses the result relies on, besides not
/// crashing.
///
/// Built two ways (scripts/fuzz.sh):
/// - with `-sanitize=fuzzer -DFUZZING`, libFuzzer drives `LLVMFuzzerTestOneInput` with the
///   target named by MACHINE_FUZZ_TARGET;
/// - plainly, as `machine-fuzz TARGET FILE...`, which runs files through a target: a crash
///   libFuzzer saved is replayed under the debugger this way.
enum FuzzTarget: String, CaseIterable {
    case dns, events, containers, httpHead = "http-head", console, procStat = "proc-stat", df, platforms

    func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .dns: Self.dns(Array(bytes))
        case .events: Self.events(bytes)
        case .containers: Self.containers(Data(bytes))
        case .httpHead: Self.httpHead(Data(bytes))
        case .console: Self.console(String(decoding: bytes, as: UTF8.self))
        case .procStat: Self.procStat(String(decoding: bytes, as: UTF8.self))
        case .df: Self.df(String(decoding: bytes, as: UTF8.self))
        case .platforms: Self.platforms(String(decoding: bytes, as: UTF8.self))
        }
    }

    /// A query from the guest's resolver (HostResolver): an answer that fits what it allows.
    static func dns(_ bytes: [UInt8]) {
        guard let query = try? DNSQuery(bytes) else { return }
        check(query.name.utf8.count <= 255 && (512...4096).contains(query.udpPayloadSize), "DNS name or payload size out of range")
        let record = DNSQuery.Record(type: DNSQuery.typeA, ttl: 1, data: [127, 0, 0, 1])
        let answer = query.answer(.noError, records: Array(repeating: record, count: 300), limit: query.udpPayloadSize)
        check(answer.count <= max(query.udpPayloadSize, 12 + query.question.count + 11), "a DNS answer larger than the client takes")
        check(answer[0] == bytes[0] && answer[1] == bytes[1], "a DNS answer to another id")
    }

    /// The engine's /events stream, cut at every place a read may end.
    static func events(_ bytes: UnsafeRawBufferPointer) {
        // A small limit, so that inputs of the fuzzer's sizes reach the skipping of long lines.
        var stream = EngineEvents(lineLimit: 512)
        var start = 0
        while start < bytes.count {
            // The first byte of each piece says how long the piece is: reads of any size.
            let length = min(Int(bytes[start]) * 97 + 1, bytes.count - start)
            _ = stream.feed(UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)]))
            check(stream.pendingCount <= stream.lineLimit, "an unfinished event line outgrew the limit")
            start += length
        }
    }

    /// GET /containers/json: only forwards a listener can be opened for.
    static func containers(_ data: Data) {
        for forward in PortForwards.automatic(containersJSON: data, publishAddress: "127.0.0.1", sshPort: 2222) {
            check((1...65535).contains(forward.hostPort) && (1...65535).contains(forward.guestPort), "a forward's port out of range")
            check(["tcp", "udp"].contains(forward.proto), "a forward of protocol \(forward.proto)")
            check(PortForwards.isAddress(forward.guestAddress), "a forward to a guest address that is not one")
            check((forward.container ?? "").unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F }, "a container name with control characters")
        }
    }

    static func httpHead(_ data: Data) {
        if case .complete(let status, let rest) = UnixHTTP.parseHead(data) {
            check((100...999).contains(status) && rest.count < data.count, "an HTTP head parsed wrong")
        }
    }

    /// The console: the host key to pin, its fingerprint, boot steps' times.
    static func console(_ text: String) {
        if let key = ConsoleLog.hostKey(in: text) {
            check(!key.algorithm.isEmpty && !key.base64.isEmpty && !key.line.contains("\n"), "a host key with a newline")
        }
        _ = ConsoleLog.hostKeyFingerprint(in: text)
        _ = ConsoleLog.uptime(ofStep: "sshd ready", in: text)
    }

    static func procStat(_ text: String) {
        _ = IdleSleep.cpuShare(fromProcStat: text)
    }

    /// df -kP in the guest: what `status` and `ls` then print.
    static func df(_ text: String) {
        guard let usage = DataDiskUsage.parse(df: text) else { return }
        check((0...100).contains(usage.percent), "a disk \(usage.percent)% full")
        _ = usage.warning(machine: "default")
    }

    /// What the guest's `platforms check` answers (inspect): known platforms only, printable
    /// text of bounded length.
    static func platforms(_ text: String) {
        var info = PlatformsInfo(setting: nil, emulation: "")
        info.read(check: text)
        check(info.emulated.keys.allSatisfy(GuestContract.emulatedPlatforms.contains), "a platform machine does not know")
        for said in [info.emulation] + info.emulated.values {
            check(said.utf8.count <= 420 && said.unicodeScalars.allSatisfy { (0x20..<0x7f).contains($0.value) }, "unprintable or overlong text: \(said.debugDescription)")
        }
    }

    static func check(_ condition: Bool, _ what: @autoclosure () -> String) {
        if !condition { fatalError(what()) }
    }
}

#if FUZZING
private let target: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["MACHINE_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        fatalError("set MACHINE_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    target.run(UnsafeRawBufferPointer(start: start, count: count))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// SwiftPM links an executable's entry as `<target>_main`; libFuzzer's own main is not used,
/// its driver is called from here.
@_cdecl("MachineFuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments, fuzzOne)
}
#else
@main
enum ReplayMain {
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name) else {
            print("usage: machine-fuzz TARGET FILE...   (TARGET: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))")
            print("Runs each file through the target, as libFuzzer does; scripts/fuzz.sh does the fuzzing.")
            exit(2)
        }
        for path in arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("cannot read \(path)")
                exit(1)
            }
            data.withUnsafeBytes { target.run($0) }
            print("\(path): ok")
        }
    }
}
#endif
