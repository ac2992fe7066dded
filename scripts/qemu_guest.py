#!/usr/bin/env python3
"""Boot the machine guest image with plain qemu-system-x86_64 (TCG, user networking, SSH
forwarded on 127.0.0.1 only) and talk to it with OpenSSH, pinning the host key the guest
prints on its serial console (strict checking, never trust-on-first-use).

Used by the end-to-end tests and the benchmarks (the bare-QEMU peer of `machine`). As a
command:

    scripts/qemu_guest.py busybox-tar DIR
        make a busybox root filesystem tar from Debian's busybox-static (for `docker import`:
        there is no registry here) and print its path
"""
import argparse
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port(kind=socket.SOCK_STREAM):
    """A port on 127.0.0.1 that nothing holds now (TCP, or UDP with kind=SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GuestError(Exception):
    pass


class Guest:
    """One VM: a folder with its data disk, seed, SSH key, console log and QEMU pid."""

    def __init__(self, image, folder, *, boot_iso=False, memory_mb=1024, cpus=2, data_disk=None, hostname="machine-test",
                 engine_disk=None, cpu="max", seed_files=None):
        self.image = Path(image)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.boot_iso = boot_iso
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.data_disk = Path(data_disk) if data_disk else self.folder / "data.qcow2"
        self.hostname = hostname
        # The engine's read-only disk (engine.img), attached as `machine` attaches it; without
        # it the engine is installed from its archive over SSH (install_engine).
        self.engine_disk = Path(engine_disk) if engine_disk else None
        self.cpu = cpu
        # More seed files, by name (the seed as `machine` writes it, e.g. "platforms").
        self.seed_files = dict(seed_files or {})
        self.console = self.folder / "console.log"
        self.pidfile = self.folder / "qemu.pid"
        self.key = self.folder / "id_ed25519"
        self.known_hosts = self.folder / "known_hosts"
        self.port = None
        self._forwards = []

    # ---- setup -------------------------------------------------------------------------
    def _prepare(self):
        if not self.key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        seed = self.folder / "seed"
        seed.mkdir(exist_ok=True)
        shutil.copy(f"{self.key}.pub", seed / "authorized_keys")
        (seed / "hostname").write_text(self.hostname + "\n")
        for name, text in self.seed_files.items():
            (seed / name).write_text(text)
        subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "MACHINE_SEED", "-J", "-R",
                        "-o", str(self.folder / "seed.iso"), str(seed)], check=True, stderr=subprocess.DEVNULL)
        if not self.data_disk.exists():
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.data_disk), "8G"], check=True)

    def _disk_format(self):
        out = subprocess.run(["qemu-img", "info", "--output=json", str(self.data_disk)], capture_output=True, text=True, check=True).stdout
        return "qcow2" if '"format": "qcow2"' in out else "raw"

    def command(self):
        cmd = ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", self.cpu, "-smp", str(self.cpus),
               "-m", str(self.memory_mb), "-nodefaults", "-display", "none",
               "-serial", f"file:{self.console}",
               "-drive", f"file={self.data_disk},if=none,id=data,format={self._disk_format()}",
               "-device", "virtio-blk-pci,drive=data,serial=machine-data",
               "-drive", f"file={self.folder / 'seed.iso'},if=none,id=seed,format=raw,readonly=on",
               "-device", "virtio-blk-pci,drive=seed,serial=machine-seed",
               "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.port}-:22",
               "-device", "virtio-net-pci,netdev=net0",
               "-device", "virtio-rng-pci",
               "-pidfile", str(self.pidfile), "-daemonize"]
        if self.engine_disk:
            cmd += ["-drive", f"file={self.engine_disk},if=none,id=engine,format=raw,readonly=on",
                    "-device", "virtio-blk-pci,drive=engine,serial=machine-engine"]
        if self.boot_iso:
            cmd += ["-cdrom", str(self.image / "machine.iso"), "-boot", "d"]
        else:
            cmdline = (self.image / "cmdline").read_text().strip()
            cmd += ["-kernel", str(self.image / "vmlinux"), "-initrd", str(self.image / "initramfs.img"), "-append", cmdline]
        return cmd

    def start(self):
        self._prepare()
        self.port = free_port()
        # QEMU truncates the serial log when it opens it: keep the previous boot's log aside.
        if self.console.exists():
            boots = len(list(self.folder.glob("console.*.log")))
            self.console.rename(self.folder / f"console.{boots + 1}.log")
        subprocess.run(self.command(), check=True)
        return self

    # ---- console -----------------------------------------------------------------------
    def console_text(self):
        """The serial console of the current (or last) boot."""
        if not self.console.exists():
            return ""
        return self.console.read_bytes().decode(errors="replace")

    def wait_for(self, step, timeout=90):
        """Waits for '[UPTIME] machine: STEP' on the console of this boot; returns UPTIME."""
        pattern = re.compile(r"\[([0-9.]+)\] machine: " + re.escape(step) + r"\r?$", re.M)
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = pattern.search(self.console_text())
            if m:
                return float(m.group(1))
            if not self.running():
                raise GuestError(f"QEMU exited before '{step}'; console:\n{self.console_text()[-3000:]}")
            time.sleep(0.1)
        raise GuestError(f"no '{step}' on the console within {timeout}s; console:\n{self.console_text()[-3000:]}")

    def host_key(self):
        keys = re.findall(r"machine-host-key: (ssh-\S+ \S+)", self.console_text())
        if not keys:
            raise GuestError("the guest printed no host key on its console")
        return keys[-1]

    def fingerprint(self):
        found = re.findall(r"machine-host-key-fingerprint: (SHA256:\S+)", self.console_text())
        return found[-1] if found else None

    def pin_host_key(self):
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_key()}\n")

    # ---- ssh ---------------------------------------------------------------------------
    def ssh_options(self):
        return ["-i", str(self.key), "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR"]

    def ssh(self, command, check=True, input=None, timeout=300):
        result = subprocess.run(["ssh", "-p", str(self.port), *self.ssh_options(), "root@127.0.0.1", command],
                                input=input, capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            raise GuestError(f"ssh {command!r} exited {result.returncode}: {result.stderr.decode(errors='replace')}")
        return result

    def upload(self, sources, destination):
        subprocess.run(["scp", "-q", "-P", str(self.port), *self.ssh_options(), *map(str, sources),
                        f"root@127.0.0.1:{destination}"], check=True, timeout=600)

    def boot(self, timeout=120):
        """Starts the VM, waits until sshd listens and pins the key the console shows."""
        self.start()
        uptime = self.wait_for("sshd ready", timeout)
        self.pin_host_key()
        return uptime

    def forward_socket(self, local, remote="/var/run/docker.sock"):
        local = Path(local)
        if local.exists():
            local.unlink()
        proc = subprocess.Popen(["ssh", "-p", str(self.port), *self.ssh_options(), "-N",
                                 "-o", "ExitOnForwardFailure=yes", "-o", "StreamLocalBindUnlink=yes",
                                 "-L", f"{local}:{remote}", "root@127.0.0.1"],
                                # Its only words are "connection closed" when the guest powers off.
                                stderr=subprocess.DEVNULL)
        self._forwards.append(proc)
        for _ in range(200):
            if local.exists():
                return proc
            if proc.poll() is not None:
                raise GuestError("ssh -L exited before the socket appeared")
            time.sleep(0.05)
        raise GuestError("the forwarded socket did not appear")

    def install_engine(self, engine_dir, upload=True):
        """Installs the bundle in engine_dir from its archive, as `machine` updates a running
        guest (uploaded first, unless upload=False finds it there); returns what install.sh said."""
        engine_dir = Path(engine_dir)
        sha = hashlib.sha256((engine_dir / "engine.tar.xz").read_bytes()).hexdigest()
        if upload:
            self.upload([engine_dir / "engine.tar.xz", engine_dir / "install.sh"], "/var/lib/machine/")
        return self.ssh(f"sh /var/lib/machine/install.sh /var/lib/machine/engine.tar.xz {sha}").stdout.decode()

    # ---- lifecycle ---------------------------------------------------------------------
    def pid(self):
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self):
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie is not running; QEMU daemonized, so it is not our child to reap.
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except OSError:
            return False

    def poweroff(self, timeout=60):
        """Clean shutdown from inside the guest; waits for QEMU to exit."""
        self.ssh("poweroff", check=False, timeout=30)
        deadline = time.time() + timeout
        while self.running() and time.time() < deadline:
            time.sleep(0.2)
        if self.running():
            raise GuestError(f"the guest did not power off within {timeout}s")
        self._stop_forwards()

    def kill(self):
        self._stop_forwards()
        pid = self.pid()
        if pid and self.running():
            os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                if not self.running():
                    break
                time.sleep(0.05)

    def _stop_forwards(self):
        for proc in self._forwards:
            proc.terminate()
            proc.wait()
        self._forwards = []


def debian_suites(newest_first=False):
    """The Debian suites the recipes build a guest from (SUITES in scripts/lib/debian.sh): the
    default first, or the newest release first (benchmarks compare it with the older)."""
    text = (Path(__file__).resolve().parent / "lib" / "debian.sh").read_text()
    suites = re.search(r"^SUITES=\(([^)]*)\)", text, re.M).group(1).split()
    releases = ["trixie", "bookworm"]  # newest first
    return sorted(suites, key=releases.index) if newest_first else suites



def print_suites_table(suites, rows, width, goal="goal"):
    """Prints a benchmark's rows measured on several Debian suites, a column each, and the first
    suite against the last: rows are (measure, {suite: (shown, number)}, goal)."""
    ratio = f"{suites[0]}/{suites[-1]}" if len(suites) > 1 else ""
    print(f"{'measure':<36}" + "".join(f"{s:<{width}}" for s in suites) + f"{ratio:<16}{goal}")
    for name, cells, target in rows:
        first, last = cells[suites[0]][1], cells[suites[-1]][1]
        compared = f"{first / last:.2f}x" if len(suites) > 1 and last else ""
        print(f"{name:<36}" + "".join(f"{cells[s][0]:<{width}}" for s in suites) + f"{compared:<16}{target}")


def release_machine():
    """The optimized `machine` binary as the Debian package has it (the quickstart installs that:
    the Swift runtime linked in), rebuilt if the sources changed: benchmarks measure it, not the
    debug build the tests use. MACHINE_BIN names one already built (an ordinary user running a
    benchmark cannot build in root's checkout)."""
    if os.environ.get("MACHINE_BIN"):
        return os.environ["MACHINE_BIN"]
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(["swift", "build", "-c", "release", "--static-swift-stdlib"], cwd=repo, check=True, capture_output=True)
    return str(repo / ".build" / "release" / "machine")


def kill_guests_under(folder):
    """Kills every QEMU whose pidfile lies under folder (benchmarks' and demos' cleanup)."""
    for pidfile in Path(folder).rglob("qemu.pid"):
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def engine_ping(sock, timeout=60):
    """One GET /_ping on the engine's unix socket, on a connection of its own as a docker
    client makes one; raises GuestError unless the engine answers 200."""
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(timeout)
        client.connect(str(sock))
        client.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        reply = b""
        while chunk := client.recv(4096):
            reply += chunk
    if not reply.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
        raise GuestError(f"the engine answered {reply[:80]!r} on {sock}")


def wait_until(what, check, timeout=300):
    """Waits, looking once a second, until check() is true; exits naming `what` after `timeout`
    seconds (for the scripts in bench/ and scripts/, whose machines say what they do in their
    agent.log)."""
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(1)


def wait_for_ping(sock, timeout=60):
    """Waits until the engine answers GET /_ping on a unix socket; returns seconds waited."""
    start = time.time()
    while time.time() - start < timeout:
        try:
            engine_ping(sock, timeout=5)
            return time.time() - start
        except (OSError, GuestError):
            pass
        time.sleep(0.25)
    raise GuestError(f"the engine did not answer /_ping on {sock} within {timeout}s")


def folder_tree(root, folders, per=100):
    """A home-like tree of `folders` empty folders under root: project0/src0 ... (`per` a project)."""
    for i in range(folders // per):
        for j in range(per):
            (Path(root) / f"project{i}" / f"src{j}").mkdir(parents=True)


WEB = "mkdir /w && echo hi > /w/index.html && exec httpd -f -p 80 -h /w"


class SharingMachine:
    """A machine of `binary` in a MACHINE_HOME of its own under `work`, sharing the folder `tree`,
    with a busybox web server published on a free port that answers "hi" (what the agent's
    benchmarks and scripts/agent-order.py drive it through). No docker context is made: the
    docker CLI is pointed at the machine's socket."""

    DOCKER = shutil.which("docker") or "/usr/local/bin/docker"

    def __init__(self, binary, work, name, tree):
        self.binary, self.work, self.name, self.tree = binary, Path(work), name, Path(tree)
        self.home = self.work / "home"
        self.env = dict(os.environ, MACHINE_HOME=str(self.home))
        self.env.pop("DOCKER_CONTEXT", None)
        self.folder = self.home / "machines" / name
        self.engine = self.folder / "docker.sock"
        self.port = None

    def machine(self, *args):
        return subprocess.run([self.binary, *args], env=self.env, check=True, capture_output=True, text=True)

    def docker(self, *args):
        return subprocess.run([self.DOCKER, "-H", f"unix://{self.engine}", *args], check=True, capture_output=True, text=True)

    def up(self):
        """Boots it (no idle sleep) and starts the web server; returns the published port."""
        self.machine("up", self.name, "--no-context", "--mount", str(self.tree), "--idle-sleep", "off")
        self.docker("import", busybox_image_tar(self.work / "busybox"), "busybox:latest")
        self.port = free_port()
        self.docker("run", "-d", "-p", f"{self.port}:80", "busybox", "sh", "-c", WEB)
        return self.port

    def fetch(self, timeout=60):
        """One request to the published web server, on a connection of its own."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=timeout) as reply:
            if reply.read() != b"hi\n":
                raise GuestError("the published port answered something else")

    def remove(self):
        subprocess.run([self.binary, "rm", "--force", self.name], env=self.env, capture_output=True)
        kill_guests_under(self.work)


def busybox_image_tar(folder):
    """A root filesystem tar with busybox-static from Debian, for `docker import`."""
    folder = Path(folder)
    deb_dir = folder / "deb"
    deb_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "-q", "-o", f"APT::Sandbox::User={os.environ.get('USER', 'root')}", "download", "busybox-static"],
                   cwd=deb_dir, check=True, capture_output=True)
    deb = next(deb_dir.glob("busybox-static_*.deb"))
    extracted = folder / "x"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(extracted)], check=True)
    root = folder / "rootfs"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(extracted / "bin" / "busybox", root / "bin" / "busybox")
    for applet in ["sh", "echo", "cat", "ls", "sleep", "wget", "httpd", "sha256sum", "head", "dd", "true", "false",
                   "ln", "rm", "mkdir", "stat", "id", "touch", "date"]:
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    tar = folder / "busybox-rootfs.tar"
    subprocess.run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True)
    return tar


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("busybox-tar", help="make a busybox rootfs tar for docker import")
    b.add_argument("dir")
    args = parser.parse_args()
    if args.command == "busybox-tar":
        print(busybox_image_tar(args.dir))


if __name__ == "__main__":
    main()
