import ArgumentParser
import FoundationEssentials
import MachineCore

extension Machine {
    struct Up: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create (if needed) and start a machine, install the engine, and point docker at it.",
            discussion: """
                The one command: builds the guest image if none is cached, creates the
                machine if it does not exist, boots it, installs or updates the engine,
                starts the host agent that forwards the engine socket, and makes a docker
                context "machine-NAME" the current one. On a machine that is already up it
                only checks, and changes nothing.

                --disk and --iso apply when a machine is created. --accel, --cpus and --memory
                are kept in its config and apply at its next boot: now if it is stopped (or
                paused, crashed, half-stopped), else at `machine restart`. Engine options are kept in its config and applied now.
                Share options (--mount, --mount-type, --no-mounts) are kept in its config and
                apply at its next boot: now if it is stopped, else at `machine restart`.
                By default your home folder is shared at the same path.

                Containers reach services on this host's 127.0.0.1 as host.docker.internal
                (and --add-host NAME:host-gateway), resolve names as this host does, and
                published UDP ports are forwarded like TCP ones; --host-access off cuts
                containers off from this host. HTTP_PROXY, HTTPS_PROXY and NO_PROXY of your
                environment go to the engine (--no-proxy-env leaves them out), and it trusts
                this host's CA certificates and ~/.docker/certs.d, refreshed at each boot.

                EXAMPLES:
                  machine up
                  docker run --rm busybox echo hello
                  machine up dev --cpus 4 --memory 4G
                  machine up --engine-env HTTP_PROXY=http://proxy:3128
                  machine up --no-context && eval "$(machine env)"
                  machine up --mount ~/src --mount ~/datasets:/data:ro
                  docker run --rm busybox wget -qO- http://host.docker.internal:8000/
                  docker run -d -p 5353:53/udp my-dns-server
                  docker run --rm -v "$PWD":/src -w /src busybox ls
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: NameArgument
        @OptionGroup var configTrust: ConfigTrustOptions
        @OptionGroup var shape: MachineShapeOptions
        @OptionGroup var engine: EngineOptions
        @OptionGroup var shares: ShareOptions
        @Flag(help: "Do not create or switch to the docker context machine-NAME.") var noContext = false

        func run() throws {
            try perform { () throws(MachineError) in
                let machines = try global.machines(for: target.name)
                configTrust.apply(to: machines)
                let name = target.name
                let machineHome = machines.paths.home.path
                let (engine, shares) = (self.engine, self.shares)
                let requested = try shape.shape()
                let request = Machines.UpRequest(
                    shape: requested,
                    newConfig: { () throws(MachineError) -> MachineConfig in
                        var config = try requested.newConfig(name: name, engine: try engine.settings(progress: machines.progress), sharesHome: machines.remote == nil)
                        try shares.apply(to: &config, home: machineHome)
                        return config
                    },
                    changeShares: shares.isEmpty ? nil : { (config: inout MachineConfig) throws(MachineError) in try shares.apply(to: &config, home: machineHome) },
                    changeEngine: engine.isEmpty ? nil : { (current: EngineSettings) throws(MachineError) -> EngineSettings in try engine.settings(over: current, progress: machines.progress) })
                let started = try machines.up(name, request).started
                let socket = URL(fileURLWithPath: started.dockerSocket)
                if started.alreadyRunning && started.installedEngine == nil && !started.settingsChanged {
                    print("\(name) is already up")
                } else {
                    if let version = started.installedEngine { machines.progress("engine \(version) installed") }
                    if started.settingsChanged && started.installedEngine == nil { machines.progress("engine settings applied") }
                    print("\(name) is up")
                }
                var contextLine: String?
                if !noContext {
                    if let context = try DockerContext(machine: name, paths: machines.paths).apply().name {
                        contextLine = "docker uses the context \(context) (docker context use default to switch back)"
                    } else {
                        machines.progress("note: no docker CLI in PATH; no docker context made")
                    }
                } else {
                    Start.restoreContext(of: name, machines)
                }
                if let warning = machines.dataDiskUsage(name)?.warning(machine: name) { machines.progress(warning) }
                print("""
                    engine socket: \(DockerContext.dockerHost(socket: socket))
                    \(contextLine ?? "to use it: eval \"$(machine env\(MachineName.commandSuffix(name)))\"")
                    try: docker version
                    """)
            }
        }
    }
}
