import Foundation

/// What a user chose for a machine at `create`; kept as config.json in its folder.
public struct MachineConfig: Codable, Sendable, Equatable {
    public var name: String
    public var cpus: Int
    public var memoryMiB: Int
    public var diskGiB: Int
    /// Boot this ISO as a CD-ROM instead of the cached image's kernel (like boot2docker.iso).
    public var iso: String?
    /// 127.0.0.1 port forwarded to the guest's sshd, chosen free at create.
    public var sshPort: Int
    /// auto, kvm or tcg.
    public var accel: String
    public var created: Date

    public init(name: String, cpus: Int = 2, memoryMiB: Int = 1024, diskGiB: Int = 20, iso: String? = nil,
                sshPort: Int, accel: String = "auto", created: Date = Date()) {
        self.name = name
        self.cpus = cpus
        self.memoryMiB = memoryMiB
        self.diskGiB = diskGiB
        self.iso = iso
        self.sshPort = sshPort
        self.accel = accel
        self.created = created
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()

    public func encoded() -> Data {
        (try? Self.encoder.encode(self)) ?? Data()
    }

    public static func load(_ url: URL) throws(MachineError) -> MachineConfig {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw MachineError("cannot read \(url.path): \(error.localizedDescription)")
        }
        do {
            return try decoder.decode(MachineConfig.self, from: data)
        } catch {
            throw MachineError("\(url.path) is damaged (\(error))",
                               hint: "fix the file by hand, or remove the machine with `machine rm --force \(url.deletingLastPathComponent().lastPathComponent)`")
        }
    }
}

/// Sizes as users write them: 2048 (MiB), 2G, 512M, 1.5G.
public enum Size {
    public static func mebibytes(_ text: String) throws(MachineError) -> Int {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        var number = trimmed
        var factor = 1.0
        for (suffix, value) in [("GIB", 1024.0), ("GB", 1024.0), ("G", 1024.0), ("MIB", 1.0), ("MB", 1.0), ("M", 1.0), ("TIB", 1_048_576.0), ("T", 1_048_576.0)]
        where trimmed.hasSuffix(suffix) {
            number = String(trimmed.dropLast(suffix.count))
            factor = value
            break
        }
        guard let value = Double(number), value > 0, value.isFinite else {
            throw MachineError("invalid size \"\(text)\"", hint: "write a size like 2G, 512M or 2048 (MiB)", exitCode: 64)
        }
        return Int((value * factor).rounded())
    }
}
