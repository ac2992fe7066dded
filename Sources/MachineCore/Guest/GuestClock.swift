import FoundationEssentials
import SSH

/// The guest's clock stops whenever its CPUs do: a machine paused by libvirt, a host that
/// slept, an agent's session that went quiet. Nothing inside the guest can tell (no NTP is
/// reachable, and its own clock says no time passed), so the host puts its time in.
public enum GuestClock {
    /// A guest command that sets the clock to `now` when the two differ by more than a second
    /// (so a guest that kept time is never stepped), and prints by how many seconds it was off.
    public static func command(now: Date = Date()) -> String {
        let host = Int(now.timeIntervalSince1970.rounded())
        return "h=\(host); g=$(date +%s); d=$((h - g)); if [ ${d#-} -gt 1 ]; then date -u -s @$h >/dev/null && echo $d; fi"
    }

    /// Sets the clock over `session`; returns how many seconds it was off, nil if it was right.
    public static func set(over session: Session, guest: GuestSSH) throws(MachineError) -> Int? {
        let result: (status: Int32, output: Data, errors: Data)
        do {
            result = try session.run(command())
        } catch {
            throw GuestSSH.explain(error, name: guest.name, files: guest.files)
        }
        guard result.status == 0 else {
            throw MachineError("setting the clock of \(guest.name) failed: \(String(decoding: result.errors, as: UTF8.self))")
        }
        return Int(String(decoding: result.output, as: UTF8.self).trimmed())
    }
}
