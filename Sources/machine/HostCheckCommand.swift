import ArgumentParser
import FoundationEssentials
import HostOS
import MachineCore

extension Machine {
    struct HostCheck: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "host-check",
            abstract: "Check what this host runs machines with: KVM or TCG, and whether libvirtd is set up for it.",
            discussion: """
                KVM counts only if it boots the real guest kernel (the cached image's, when
                one is built), not just if /dev/kvm exists: on some hosts a test firmware runs
                under KVM but the kernel dies at once. A "no" is remembered for this host boot,
                so machines go straight to TCG. scripts/host-setup.sh asks this command how to
                start libvirtd.

                EXAMPLES:
                  machine host-check
                  machine host-check --print-accelerator     # kvm or tcg, for scripts
                """)

        @Flag(help: "Print only the accelerator machines get here: kvm or tcg.") var printAccelerator = false

        func run() throws {
            let check = MachineCore.HostCheck.run(paths: Paths())
            if printAccelerator {
                print(check.accelerator.rawValue)
                return
            }
            print(check.kvm.works
                  ? "KVM: works (\(check.kvm.reason)); machines use it"
                  : "KVM: not usable (\(check.kvm.reason)); machines use QEMU's TCG emulation (slower, always works)")
            switch check.libvirtdSeesKVM {
            case nil:
                print("libvirtd: no system daemon seen (an ordinary user's machines use their own session daemon)")
            case true? where check.libvirtdNeedsRestart:
                print("libvirtd: can open /dev/kvm, so it re-probes QEMU at every machine start (tens of seconds each)")
                print("hint: run \(MachineCore.HostCheck.setupCommand) as root: it restarts libvirtd without /dev/kvm (running machines keep running)")
                throw ExitCode(1)
            case true?:
                print("libvirtd: sees /dev/kvm")
            case false?:
                print("libvirtd: runs without /dev/kvm")
            }
            printShares()
        }

        /// What `--mount-type auto` gives this user's machines, and what would give virtiofs.
        func printShares() {
            guard Shares.findVirtiofsd() != nil else {
                print("shares: 9p (no virtiofsd; apt-get install qemu-system-common gives virtiofs)")
                return
            }
            if HostUser.isRoot {
                print("shares: virtiofs, run by libvirt's system daemon")
            } else if let problem = Shares.userNamespaceProblem() {
                print("shares: 9p (\(problem.message))")
                if let hint = problem.hint { print("hint: \(hint)") }
            } else {
                print("shares: virtiofs, run by machine as you in a user namespace")
            }
        }
    }
}
