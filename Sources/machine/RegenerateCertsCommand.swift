import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct RegenerateCerts: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "regenerate-certs",
            abstract: "Make new TLS certificates for a machine's engine endpoint; the old ones are refused.",
            discussion: """
                A new CA signs a new server and client certificate (its key is
                not kept). A running machine's engine restarts with them; clients
                find them in DOCKER_CERT_PATH, which stays the same.

                EXAMPLES:
                  machine regenerate-certs
                  machine regenerate-certs dev
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @OptionGroup var configTrust: ConfigTrustOptions

        func run() throws {
            try perform { () throws(MachineError) in
                let machines = try global.machines(for: target.name)
                configTrust.apply(to: machines)
                try machines.regenerateCertificates(target.name)
                print("new certificates for \(target.name) in \(machines.files(target.name).tls.path); the old ones are refused from now on")
            }
        }
    }
}
