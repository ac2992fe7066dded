#if canImport(Glibc)
import Glibc
#endif

/// Who this process runs as.
public enum HostUser {
    public static var id: UInt32 { getuid() }
    public static var groupID: UInt32 { getgid() }
    public static var isRoot: Bool { getuid() == 0 }

    /// "UID:GID:GROUP,GROUP,...", its ids and supplementary groups: what decides which devices
    /// (/dev/kvm) it may open.
    public static var credentials: String {
        var groups = [gid_t](repeating: 0, count: 256)
        let count = getgroups(Int32(groups.count), &groups)
        return "\(getuid()):\(getgid()):" + groups.prefix(max(0, Int(count))).map(String.init).joined(separator: ",")
    }
}
