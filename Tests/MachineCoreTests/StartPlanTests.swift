@testable import MachineCore
import Testing
import Virt

/// What `machine start` (and `up`, `restart`, `upgrade`) does, for every state a machine can
/// be found in: what brings the guest up, and whether its engine and agent are set up again.
@Suite struct StartPlanTests {
    typealias Bring = StartPlan.Bring

    static func status(_ state: Domain.State, _ reason: String) -> Domain.Status {
        Domain.Status(state: state, reason: reason)
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let snapshot: StartSnapshot
        let bring: Bring
        let provision: Bool
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "never defined", snapshot: StartSnapshot(domain: status(.stopped, "not defined")),
             bring: .boot(leftover: nil), provision: true),
        Case(name: "shut off", snapshot: StartSnapshot(domain: status(.stopped, "shutdown")),
             bring: .boot(leftover: nil), provision: true),
        Case(name: "running with a live agent and an engine that answers",
             snapshot: StartSnapshot(domain: status(.running, "booted"), agentRunning: true, engineAnswers: true),
             bring: .nothing, provision: false),
        Case(name: "running with a dead agent", snapshot: StartSnapshot(domain: status(.running, "booted"), agentRunning: false),
             bring: .nothing, provision: true),
        Case(name: "running, agent alive, engine silent",
             snapshot: StartSnapshot(domain: status(.running, "booted"), agentRunning: true, engineAnswers: false),
             bring: .nothing, provision: true),
        Case(name: "running, new engine settings asked for",
             snapshot: StartSnapshot(domain: status(.running, "booted"), agentRunning: true, provisionAsked: true),
             bring: .nothing, provision: true),
        Case(name: "running, no host key pinned (a boot that never finished)",
             snapshot: StartSnapshot(domain: status(.running, "booted"), agentRunning: true, engineAnswers: false, hostKeyPinned: false),
             bring: .stopUnfinishedAndBoot, provision: true),
        Case(name: "paused by the user, no host key pinned",
             snapshot: StartSnapshot(domain: status(.paused, "user"), hostKeyPinned: false),
             bring: .stopUnfinishedAndBoot, provision: true),
        Case(name: "crashed, no host key pinned", snapshot: StartSnapshot(domain: status(.crashed, "crashed"), hostKeyPinned: false),
             bring: .boot(leftover: status(.crashed, "crashed")), provision: true),
        Case(name: "paused by the user", snapshot: StartSnapshot(domain: status(.paused, "user"), agentRunning: true),
             bring: .resume, provision: true),
        Case(name: "asleep, its agent alive", snapshot: StartSnapshot(domain: status(.paused, "user"), agentRunning: true, asleep: true),
             bring: .resume, provision: false),
        Case(name: "asleep, its agent dead", snapshot: StartSnapshot(domain: status(.paused, "user"), agentRunning: false, asleep: true),
             bring: .resume, provision: true),
        Case(name: "asleep, new engine settings asked for",
             snapshot: StartSnapshot(domain: status(.paused, "user"), agentRunning: true, provisionAsked: true, asleep: true),
             bring: .resume, provision: true),
        Case(name: "paused by an error", snapshot: StartSnapshot(domain: status(.paused, "ioerror"), agentRunning: true),
             bring: .boot(leftover: status(.paused, "ioerror")), provision: true),
        Case(name: "paused by QEMU for an unknown reason", snapshot: StartSnapshot(domain: status(.paused, "unknown")),
             bring: .boot(leftover: status(.paused, "unknown")), provision: true),
        Case(name: "crashed", snapshot: StartSnapshot(domain: status(.crashed, "crashed")),
             bring: .boot(leftover: status(.crashed, "crashed")), provision: true),
        Case(name: "stopped after QEMU crashed", snapshot: StartSnapshot(domain: status(.stopped, "crashed")),
             bring: .boot(leftover: nil), provision: true),
        Case(name: "shutting down", snapshot: StartSnapshot(domain: status(.shuttingDown, "user")),
             bring: .boot(leftover: status(.shuttingDown, "user")), provision: true),
        Case(name: "saved with the same builds", snapshot: StartSnapshot(domain: status(.stopped, "saved"), savedState: .sameBoot),
             bring: .restore, provision: true),
        Case(name: "saved with other builds", snapshot: StartSnapshot(domain: status(.stopped, "saved"), savedState: .otherBoot),
             bring: .discardSavedStateAndBoot, provision: true),
        // A machine held after a failed upgrade compares its saved state with the held builds
        // (BuildSelection), so the plan sees the same two answers.
        Case(name: "held builds, saved on them", snapshot: StartSnapshot(domain: status(.stopped, "saved"), savedState: .sameBoot, provisionAsked: true),
             bring: .restore, provision: true),
    ]

    @Test(arguments: cases) func eachStateHasOneAction(_ example: Case) {
        let plan = StartPlan(example.snapshot)
        #expect(plan.bring == example.bring)
        #expect(plan.provision == example.provision)
        #expect(plan.alreadyRunning == (example.bring == .nothing))
    }

    /// The snapshot asks for what costs time (builds, a ping of the engine) only when the
    /// answer can change the plan.
    @Test func costlyPartsAreAskedOnlyWhenTheyDecide() {
        #expect(StartSnapshot(domain: Self.status(.stopped, "saved")).needsSavedState)
        #expect(StartSnapshot(domain: Self.status(.crashed, "crashed")).needsSavedState)
        #expect(!StartSnapshot(domain: Self.status(.running, "booted")).needsSavedState)
        #expect(!StartSnapshot(domain: Self.status(.paused, "user")).needsSavedState)
        #expect(StartSnapshot(domain: Self.status(.running, "booted"), agentRunning: true).needsEnginePing)
        #expect(!StartSnapshot(domain: Self.status(.running, "booted"), agentRunning: false).needsEnginePing)
        #expect(!StartSnapshot(domain: Self.status(.running, "booted"), agentRunning: true, provisionAsked: true).needsEnginePing)
        #expect(!StartSnapshot(domain: Self.status(.stopped, "shutdown"), agentRunning: true).needsEnginePing)
    }
}
