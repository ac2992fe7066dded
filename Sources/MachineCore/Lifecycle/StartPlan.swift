import Virt

/// What a start finds a machine to be, as far as it decides what the start does. Gathered by
/// `Machines.snapshot`; each part that costs something (builds, an engine ping) only when the
/// parts before it leave the decision open.
struct StartSnapshot: Equatable {
    /// A saved state (`machine suspend`) and whether a boot now would be made of the same
    /// image, engine and shape as the boot it came from.
    enum SavedState: Equatable {
        case none
        case sameBoot
        case otherBoot
    }

    var domain: Domain.Status
    var savedState: SavedState = .none
    /// The host agent of the running boot is alive.
    var agentRunning = false
    /// The engine answers `/_ping` through the agent's socket; nil when nobody asked.
    var engineAnswers: Bool?
    /// The user asked for the engine's settings to be applied again (`up` with new ones).
    var provisionAsked = false
    /// Its agent marked it asleep (IdleSleep): a pause the agent made and would undo itself.
    var asleep = false
    /// The guest's host key was pinned from the console of a boot (known_hosts). A guest that
    /// runs without one is a boot that never finished (it timed out, or `machine` was killed):
    /// nothing can log in to it.
    var hostKeyPinned = true

    /// Whether a QEMU runs for the machine that no session can be made to: it must go before
    /// the machine can come up.
    var unfinishedBoot: Bool { !hostKeyPinned && (domain.state == .running || pausedByUser) }

    /// Whether the domain was paused by someone (`virsh suspend`, its agent when idle), not by QEMU.
    var pausedByUser: Bool { domain.state == .paused && domain.reason == "user" }

    /// Whether the start has to look at a saved state: the guest is not running already.
    var needsSavedState: Bool { domain.state != .running && !pausedByUser }

    /// Whether the start has to ping the engine to decide: it runs, and so does its agent.
    var needsEnginePing: Bool { domain.state == .running && agentRunning && !provisionAsked }
}

/// What a start does, decided from a snapshot alone.
struct StartPlan: Equatable {
    enum Bring: Equatable {
        /// It runs: nothing to bring up.
        case nothing
        /// Paused by a user: resume it where it was.
        case resume
        /// Restore its saved state.
        case restore
        /// Its saved state was made of other builds or another shape: throw it away, then boot.
        case discardSavedStateAndBoot
        /// Boot; `leftover` says what is left of an earlier boot to stop first (nil: nothing).
        case boot(leftover: Domain.Status?)
        /// Stop the QEMU of a boot that never finished (`StartSnapshot.unfinishedBoot`), then boot.
        case stopUnfinishedAndBoot
    }

    let bring: Bring
    /// Provision the engine and (re)start the host agent, then wait for the engine.
    let provision: Bool

    var alreadyRunning: Bool { bring == .nothing }

    init(_ snapshot: StartSnapshot) {
        switch snapshot.domain.state {
        case _ where snapshot.unfinishedBoot:
            bring = .stopUnfinishedAndBoot
        case .running:
            bring = .nothing
        case _ where snapshot.pausedByUser:
            bring = .resume
        default:
            switch snapshot.savedState {
            case .sameBoot: bring = .restore
            case .otherBoot: bring = .discardSavedStateAndBoot
            case .none: bring = .boot(leftover: snapshot.domain.state == .stopped ? nil : snapshot.domain)
            }
        }
        // A guest that comes up here gets its engine and agent now; one that runs gets them
        // again when asked, when its agent is gone, or when its engine does not answer.
        // A machine that only slept wakes as it was: its agent and engine never stopped.
        let wakesOnly = bring == .resume && snapshot.asleep && snapshot.agentRunning && !snapshot.provisionAsked
        provision = !wakesOnly && (bring != .nothing || snapshot.provisionAsked || !snapshot.agentRunning || snapshot.engineAnswers != true)
    }
}
