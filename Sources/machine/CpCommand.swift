import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Cp: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a file between the host and a machine (NAME:PATH is in the machine).",
            discussion: """
                Bytes and permission bits are kept. The copy is written under a temporary
                name and renamed into place. On the host, a symlink inside a folder shared
                with any machine is never followed (a machine may have put it there): as the
                destination it is replaced, as the source it is refused.

                EXAMPLES:
                  machine cp ./app.conf default:/etc/app.conf
                  machine cp dev:/var/log/docker.log .
                """)

        @OptionGroup var global: GlobalOptions
        @Argument(help: "What to copy: a host path or NAME:PATH.") var source: String
        @Argument(help: "Where to: a host path or NAME:PATH.") var destination: String

        func run() throws {
            try perform { () throws(MachineError) in
                let from = GuestCopy.Location(source)
                let to = GuestCopy.Location(destination)
                func copier(_ name: String) throws(MachineError) -> GuestCopy {
                    let machines = try global.machines(for: name)
                    let guest = try machines.awakeGuest(name)
                    return try GuestCopy(session: try guest.connect(), guest: guest, walker: machines.sharesWalker())
                }
                switch (from, to) {
                case (.host(let local), .guest(let name, let remote)):
                    try copier(name).upload(local, to: remote)
                case (.guest(let name, let remote), .host(let local)):
                    try copier(name).download(remote, to: local)
                default:
                    throw MachineError("one side must be on the host and the other in a machine (NAME:PATH)",
                                       hint: "e.g. machine cp ./file default:/tmp/ or machine cp default:/tmp/file .", kind: .usage)
                }
            }
        }
    }
}
