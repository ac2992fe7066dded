import FoundationEssentials

/// A host folder shared into the guest (`--mount HOSTPATH[:GUESTPATH][:ro]`).
public struct Share: Codable, Sendable, Equatable {
    /// The folder's canonical path (symlinks resolved when it was added).
    public var hostPath: String
    /// Where the guest mounts it: the same path as on the host unless the user chose another.
    public var guestPath: String
    public var readOnly: Bool
    /// Whether host edits raise inotify events in the guest (read-write shares; `:noinotify`
    /// turns it off, for a tree too big to watch or one nobody watches).
    public var inotify: Bool

    public init(hostPath: String, guestPath: String, readOnly: Bool = false, inotify: Bool = true) {
        self.hostPath = hostPath
        self.guestPath = guestPath
        self.readOnly = readOnly
        self.inotify = inotify
    }

    enum CodingKeys: String, CodingKey { case hostPath, guestPath, readOnly, inotify }

    // Configs from before `inotify` existed have none: on, as for a new share.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        hostPath = try container.decode(String.self, forKey: .hostPath)
        guestPath = try container.decode(String.self, forKey: .guestPath)
        readOnly = try container.decode(Bool.self, forKey: .readOnly)
        inotify = try container.decodeIfPresent(Bool.self, forKey: .inotify) ?? true
    }

    // Written only when off, so a share reads as the user wrote it (and as configs always had).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(hostPath, forKey: .hostPath)
        try container.encode(guestPath, forKey: .guestPath)
        try container.encode(readOnly, forKey: .readOnly)
        if !inotify { try container.encode(inotify, forKey: .inotify) }
    }
}

/// How shares reach the guest (`--mount-type`).
public enum ShareType: String, Codable, Sendable, CaseIterable {
    /// virtiofs when the connection and the host can run it, else 9p.
    case auto
    case virtiofs
    case ninep = "9p"
}

/// One share as a device of the domain: the tag the guest mounts and how it is served.
public struct SharedFolder: Sendable, Equatable {
    public enum Transport: Sendable, Equatable {
        /// virtio-fs, served by this virtiofsd binary (libvirt starts it).
        case virtiofs(binary: String)
        /// virtio-fs for a session machine: machine starts this virtiofsd in a user namespace,
        /// listening on `socket` (UserVirtiofsd).
        case userVirtiofs(binary: String, socket: String)
        /// virtio-9p, served by QEMU itself.
        case ninep
    }

    public var tag: String
    public var share: Share
    public var transport: Transport

    public init(tag: String, share: Share, transport: Transport) {
        self.tag = tag
        self.share = share
        self.transport = transport
    }

    public var typeName: String {
        switch transport {
        case .virtiofs, .userVirtiofs: return "virtiofs"
        case .ninep: return "9p"
        }
    }
}
