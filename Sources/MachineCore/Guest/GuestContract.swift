/// Every value the host and the guest's scripts (`iso/rootfs/`, `provisioning/`) must agree on,
/// in one place. GuestContractTests reads the scripts and fails when one of them says another
/// value, so changing a side alone breaks the build's tests, not a user's boot.
public enum GuestContract {
    /// Virtio serial numbers of the disks: the guest finds its data disk and seed by them
    /// (boot.d/40-data-disk.sh, boot.d/50-seed.sh, boot.d/45-engine-disk.sh).
    public static let dataDiskSerial = "machine-data"
    public static let seedDiskSerial = "machine-seed"
    /// The engine's own read-only disk (boot.d/45-engine-disk.sh).
    public static let engineDiskSerial = "machine-engine"

    /// Console lines: the host pins the key the guest prints, and waits for the boot steps the
    /// guest logs as "[UPTIME] machine: STEP" (lib.sh's log, ssh-host-key, sshd-run).
    public static let hostKeyMarker = "machine-host-key:"
    public static let hostKeyFingerprintMarker = "machine-host-key-fingerprint:"
    public static let sshReadyStep = "sshd ready"

    /// The agent's split session (ssh-port-run, ssh-port-session): the virtio-serial port the
    /// guest's sshd writes, the guest TCP port it reads, and the handshake's two lines.
    public static let sshPortName = "org.machine.ssh"
    public static let agentInputGuestPort = 61022
    /// The second split session, for the agent's forwarded container ports (images with the
    /// `ports-port` feature): the same kind, its own port and sshd.
    public static let portsPortName = "org.machine.ports"
    public static let portsInputGuestPort = 61023
    public static let syncLine = "machine-sync"
    public static let readyLine = "machine-ready"
    /// The seed file naming the host's ends of those TCP forwards (one a line), which
    /// ssh-port-guard keeps containers from reaching through QEMU's gateway.
    public static let agentInputPortSeedFile = "agent-input-port"
    /// Seed files with the engine's settings, put in place at boot before the engine starts
    /// (boot.d/55-engine-settings.sh), so a first boot does not start it twice.
    public static let engineDaemonSeedFile = "daemon.json"
    public static let engineEnvironmentSeedFile = "engine.env"
    /// The engine's TLS endpoint, when the machine has one: these files (in the seed, and
    /// uploaded by provisioning) in the engine's home, and dockerd listening with --tlsverify
    /// on the guest's loopback at this port, which the agent forwards.
    public static let engineTLSFiles = ["tls-ca.pem", "tls-cert.pem", "tls-key.pem"]
    public static let engineTLSPort = 2376

    /// Where the engine lives on the data disk (lib.sh's ENGINE_HOME, the bundle's RPATH), and
    /// the words its `service reconfigure` answers with.
    public static let engineHome = "/var/lib/machine/engine"
    public static let settingsChanged = "changed"
    public static let settingsUnchanged = "unchanged"

    /// The host as the guest sees it (boot.d/57-host-network.sh): QEMU's gateway, which is the
    /// host's loopback, and the names that mean it in the guest and in containers.
    public static let hostAddress = "10.0.2.2"
    public static let hostNames = ["host.docker.internal", "gateway.docker.internal", "host.machine.internal"]
    /// The guest's own address on QEMU's network, and the alias whose UDP is turned to the
    /// guest's 127.0.0.1 (UDP forwards of ports published on the guest's loopback).
    public static let guestAddress = "10.0.2.15"
    public static let loopbackAliasAddress = "10.0.2.16"
    /// The seed files: "on" or "off" (containers may reach the host), and the port of the host
    /// agent's resolver on the host's loopback (absent: QEMU's own DNS relay).
    public static let hostAccessSeedFile = "host-access"
    public static let hostResolverPortSeedFile = "host-resolver-port"
    /// The host's CA bundle and its ~/.docker/certs.d in the seed (HostTrust), put by
    /// boot.d/58-host-trust.sh where dockerd reads them.
    public static let caBundleSeedFile = "ca-certificates.crt"
    public static let certsDSeedFolder = "certs.d"

    /// The seed's other files (boot.d/50-seed.sh, boot.d/70-shares.sh): who may log in, the
    /// hostname, the shares, and the paths inside them that hold the host's machine state.
    public static let authorizedKeysSeedFile = "authorized_keys"
    public static let hostnameSeedFile = "hostname"
    public static let mountsSeedFile = "mounts"
    public static let hiddenSeedFile = "hidden"
    /// A `mounts` line's fields, in order, tab-separated (70-shares.sh reads them by name).
    public static let mountsFields = ["tag", "path", "type", "mode"]

    /// The guest program the agent writes host edits to (ShareEventForwarder), and its exit
    /// status when the image has no machine_notify.ko.
    public static let shareEventsCommand = "/usr/lib/machine/share-events"
    public static let shareEventsUnsupportedStatus: Int32 = 3
    /// A notify line is `OPERATION COOKIE GUESTPATH`, OPERATION one of these words (with
    /// `notifyDirectorySuffix` for a folder), as machine_notify.c's operations[] spells them.
    public static let notifyOperations = ["create", "delete", "modify", "closewrite", "attrib", "movedfrom", "movedto"]
    public static let notifyDirectorySuffix = "dir"
    /// Programs of other platforms (provisioning/guest/platforms, platforms.txt): the platforms
    /// the engine's emulators run, the seed file that says which the machine wants ("all",
    /// "none" or one a line), and the words of `platforms check`, which `inspect` runs.
    public static let emulatedPlatforms = ["linux/arm64", "linux/arm/v7", "linux/riscv64", "linux/ppc64le", "linux/s390x"]
    public static let platformsSeedFile = "platforms"
    public static let platformsCheckCommand = engineHome + "/current/platforms check"
    public static let platformsRegisterCommand = engineHome + "/current/platforms register"
    /// Where the guest keeps its copy of the seed (lib.sh's SEED).
    public static let seedFolder = "/run/machine/seed"
    public static let platformsEmulationWord = "emulation"
    public static let platformsEmulationStates = ["on", "off", "unavailable"]
    public static let platformWorks = "works"
    public static let platformFailing = "failing"
}
