"""`machine up` end to end: the real VM, the real engine, and the host's real docker CLI
(/usr/local/bin/docker) talking to the socket the host agent forwards over SSH. One machine
serves the whole module; each test finds it up (the `up` fixture brings it back after a test
that stopped or removed it), so the tests do not depend on their order."""
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import threading

import pexpect
import pytest

from conftest import DOCKER, ENGINE, SUITE, Up, http_get, machine_binary, tail, wait_until_answers
from foreign_images import PLATFORMS, image_archive
from qemu_guest import GuestError, busybox_image_tar, engine_ping, free_port

@pytest.fixture(scope="module")
def machine_up(tmp_path_factory, cache_dir, built):
    home = tmp_path_factory.mktemp("up-home")
    machine = Up(home, cache_dir, tmp_path_factory.mktemp("up-work"))
    try:
        result = machine.machine("up")
        machine.up_output = result.stdout.decode() + result.stderr.decode()
        yield machine
    finally:
        # Also when `up` failed: a guest left running would slow every later test.
        machine.machine("rm", "--force", "default", check=False, timeout=180)


def engine_answers(socket_path):
    """Whether the engine answers /_ping on the forwarded socket within 5 s."""
    try:
        engine_ping(socket_path, timeout=5)
        return True
    except (OSError, GuestError):
        return False


@pytest.fixture
def up(machine_up):
    """The module's machine, up: the tests share one (booting one takes a minute), and a test
    that stopped, broke or removed it leaves the next to bring it back, so none depends on
    the order they run in."""
    if not engine_answers(machine_up.socket):
        machine_up.machine("up")
    return machine_up


@pytest.fixture
def busybox(up):
    """busybox:latest in the engine (imported again after a test removed the machine)."""
    if up.docker("image", "inspect", "busybox:latest", check=False).returncode != 0:
        tar = busybox_image_tar(up.work / "busybox")
        up.docker("import", str(tar), "busybox:latest")
    return "busybox:latest"


@pytest.fixture
def foreign(up, cache_dir):
    """Images of arm64, arm/v7 and riscv64 in the engine (busybox of Debian's packages of those
    architectures, foreign_images.py), by platform."""
    tags = {}
    for platform in PLATFORMS:
        tag = "machine-test/busybox:" + platform.split("/", 1)[1].replace("/", "-")
        if up.docker("image", "inspect", tag, check=False).returncode != 0:
            up.docker("load", "-i", str(image_archive(cache_dir, platform, tag, up.work)))
        tags[platform] = tag
    return tags


UNAME = {"linux/arm64": "aarch64", "linux/arm/v7": "armv7l", "linux/riscv64": "riscv64"}


def run_as(up, platform, image):
    """`uname -m` in a container of the platform: what it printed, or the engine's error."""
    result = up.docker("run", "--rm", "--platform", platform, image, "uname", "-m", check=False)
    return result.stdout.strip() if result.returncode == 0 else result.stderr


def test_up_prints_how_to_use_the_engine_and_docker_reaches_it(up):
    assert "default is up" in up.up_output
    assert f"unix://{up.socket}" in up.up_output
    assert "starting default" in up.up_output and "waiting for the engine" in up.up_output  # progress was shown
    # The engine came on its own read-only disk: nothing was uploaded or unpacked in the guest.
    assert "uploading the engine" not in up.up_output
    engine = up.machine("ssh", "--", "readlink /var/lib/machine/engine/current; grep ' /run/machine/engine ' /proc/mounts").stdout.decode()
    assert engine.splitlines()[0] == "/run/machine/engine" and " ro," in engine, engine
    # Through the context `up` made and switched to: no DOCKER_HOST needed.
    assert up.docker("context", "show").stdout.strip() == "machine-default"
    version = json.loads(up.docker("version", "--format", "{{json .}}").stdout)
    assert version["Server"]["Version"].startswith(ENGINE[SUITE][0]) and version["Server"]["ApiVersion"] == ENGINE[SUITE][1], version["Server"]
    # The socket: owner-only, in an owner-only folder.
    assert os.stat(up.socket).st_mode & 0o777 == 0o600
    assert os.stat(up.folder).st_mode & 0o777 == 0o700
    # One key pair per machine, both files owner-only.
    for key in ["id_ed25519", "id_ed25519.pub"]:
        assert os.stat(up.folder / key).st_mode & 0o777 == 0o600


def test_env_prints_a_docker_host_that_works(up):
    env_sh = up.machine("env", "--shell", "bash").stdout.decode()
    assert f"export DOCKER_HOST='unix://{up.socket}'" in env_sh
    fish = up.machine("env", "--shell", "fish").stdout.decode()
    assert f"set -gx DOCKER_HOST 'unix://{up.socket}';" in fish
    assert "unset DOCKER_HOST" in up.machine("env", "--unset").stdout.decode()
    # A fresh docker config (no context) with the printed export reaches the engine.
    script = f'eval "$({machine_binary()} env)" && {DOCKER} version --format "{{{{.Server.Os}}}}"'
    env = dict(up.env, DOCKER_CONFIG=str(up.work / "empty-docker-config"))
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "linux"
    # So does each other shell's own way of applying it (host setup installs them).
    version = f"{DOCKER} version --format '{{{{.Server.Os}}}}'"
    for shell, script in [("zsh", f'eval "$({machine_binary()} env --shell zsh)" && {version}'),
                          ("fish", f"{machine_binary()} env --shell fish | source; and {version}"),
                          ("tcsh", f"eval `{machine_binary()} env --shell tcsh` && {version}")]:
        out = subprocess.run([shell, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert (out.returncode, out.stdout.strip()) == (0, "linux"), (shell, out.stderr)
    # PowerShell and cmd are not in Debian: their text is checked.
    assert f"$Env:DOCKER_HOST = 'unix://{up.socket}'" in up.machine("env", "--shell", "powershell").stdout.decode()
    assert f"SET DOCKER_HOST=unix://{up.socket}" in up.machine("env", "--shell", "cmd").stdout.decode()
    # --unset clears the TLS variables too, whichever way the shell was set up.
    assert up.machine("env", "--shell", "cmd", "--unset").stdout.decode().split() == ["SET", "DOCKER_HOST=", "SET", "DOCKER_CERT_PATH=", "SET", "DOCKER_TLS_VERIFY="]


def test_up_again_is_quick_and_changes_nothing(up):
    agent = up.agent_pid()
    console = (up.folder / "console.log").stat().st_size
    started = time.monotonic()
    result = up.machine("up")
    assert time.monotonic() - started < 15
    assert "default is already up" in result.stdout.decode()
    assert up.agent_pid() == agent
    assert (up.folder / "console.log").stat().st_size == console


def test_the_agent_session_uses_the_algorithms_cheapest_for_the_guest(up):
    # The guest's sshd must offer hmac-md5 and the agent must pick it: with hmac-sha1 every
    # forwarded byte costs the emulated guest far more (see Session.macPreference).
    connected = [line for line in (up.folder / "agent.log").read_text().splitlines() if "connected to default" in line]
    assert connected and all(line.endswith("(aes128-ctr, hmac-md5)") for line in connected), connected


def test_the_agent_holds_its_own_session_and_nothing_inherited(up):
    # `machine up` starts the agent while its own SSH session is open; the agent must not
    # inherit that connection (or any other descriptor) and keep it half-closed for ever.
    # Its sessions are split (iso/features.txt): the engine's and the forwarded ports', each in
    # through an input port this boot forwards and out through a virtio-serial port's socket;
    # never through the SSH port everyone else uses.
    pid = up.agent_pid()
    ssh_port = int(up.machine("ip").stdout.decode().strip().rsplit(":", 1)[1])
    input_port = int((up.folder / "ssh-port.input").read_text())
    ports_input_port = int((up.folder / "ports-port.input").read_text())
    links = {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    sockets = {link[len("socket:["):-1] for link in links.values() if link.startswith("socket:[")}
    states = {ssh_port: [], input_port: [], ports_input_port: []}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote = int(fields[2].split(":")[1], 16)
        if remote in states and fields[9] in sockets:
            states[remote].append(fields[3])
    # 01: ESTABLISHED. Through the SSH port only the sessions of its own threads, each logged
    # within a moment of its login: the one for host edits in the shares, made at the first edit
    # after the agent started (anything may edit the home meanwhile), the one that measures the
    # data disk, and the one that follows the engine's events.
    time.sleep(2)
    log = (up.folder / "agent.log").read_text()
    own = sum(said in log for said in ["host edits go to", "is measured at", "the engine's events are followed at"])
    assert "the engine's events are followed at" in log, log
    assert states[ssh_port] == ["01"] * len(states[ssh_port]) and len(states[ssh_port]) <= own, \
        f"agent's connections to the SSH port: {states}, {own} sessions of its own logged"
    assert states[input_port] == ["01"] and states[ports_input_port] == ["01"], \
        f"agent's connections to the input ports, by TCP state: {states}"
    assert not [link for link in links.values() if link.startswith("pipe:")][2:], links  # only its wake pipe
    # Idle, it waits: a session whose received bytes nobody takes in (no channel read, as on
    # the ports' session with no connection) keeps poll() returning at once, a core spinning.
    before = cpu_seconds(pid)
    time.sleep(5)
    assert cpu_seconds(pid) - before < 1.5, "the agent kept a CPU busy while idle"


def test_run_prints_output_and_returns_the_exit_code(up, busybox):
    result = up.docker("run", "--rm", busybox, "sh", "-c", "echo hello from the guest; exit 3", check=False)
    assert result.stdout == "hello from the guest\n"
    assert result.returncode == 3


def test_containers_keep_address_space_randomisation(up, busybox):
    # dockerd itself runs with ADDR_NO_RANDOMIZE (faster under TCG: see provisioning/guest/
    # service); containers descend from containerd and must not inherit it.
    engine = up.machine("ssh", "--", "cat /proc/$(cat /run/docker.pid)/personality").stdout.decode().strip()
    assert int(engine, 16) & 0x0040000
    container = up.docker("run", "--rm", busybox, "cat", "/proc/self/personality").stdout.strip()
    assert int(container, 16) & 0x0040000 == 0


def test_the_home_folder_is_shared_by_default(up, busybox):
    home = Path.home().resolve()
    assert up.config()["mounts"] == [{"hostPath": str(home), "guestPath": str(home), "readOnly": False}]
    folder = Path(tempfile.mkdtemp(prefix=".machine-e2e-", dir=home))
    try:
        (folder / "f.txt").write_text("from the home folder\n")
        out = up.docker("run", "--rm", "-v", f"{folder}:/src", "-w", "/src", busybox, "sh", "-c", "cat f.txt; echo back > g.txt")
        assert out.stdout == "from the home folder\n"
        assert (folder / "g.txt").read_text() == "back\n"
    finally:
        shutil.rmtree(folder)


def test_run_interactive_reads_stdin_to_its_end(up, busybox):
    data = "".join(f"line {i}\n" for i in range(2000))
    result = up.docker("run", "--rm", "-i", busybox, "sh", "-c", "cat; echo done", input=data)
    assert result.stdout == data + "done\n"


def test_create_tty_then_start_attach_interactive(up, busybox):
    container = up.docker("create", "-t", "-i", busybox, "sh").stdout.strip()
    child = pexpect.spawn(DOCKER, ["start", "-a", "-i", container], env=up.env, timeout=60, encoding="utf-8")
    child.sendline("echo started-$((20+22))")
    child.expect("started-42")
    child.sendline("exit 4")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 4
    up.docker("rm", container)


def test_exec_it_under_a_pseudo_terminal(up, busybox):
    container = up.docker("run", "-d", busybox, "sleep", "600").stdout.strip()
    child = pexpect.spawn(DOCKER, ["exec", "-it", container, "sh"], env=up.env, timeout=60, encoding="utf-8")
    child.sendline("tty; echo sum=$((6*7))")
    child.expect(r"/dev/pts/\d+")
    child.expect("sum=42")
    child.sendline("exit 5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5
    up.docker("rm", "-f", container)


def test_logs_follow_streams_new_lines(up, busybox):
    container = up.docker("run", "-d", busybox, "sh", "-c", "for i in 1 2 3 4 5 6; do echo tick $i; sleep 1; done").stdout.strip()
    follow = subprocess.Popen([DOCKER, "logs", "-f", container], env=up.env, stdout=subprocess.PIPE, text=True)
    first = follow.stdout.readline()
    assert first.startswith("tick ")
    rest = follow.stdout.read()  # ends when the container exits
    assert follow.wait(timeout=60) == 0
    assert "tick 6" in rest
    up.docker("rm", container)


def test_build_leaves_dockerignored_files_out_of_the_context(up, busybox, tmp_path):
    (tmp_path / "Dockerfile").write_text(f"FROM {busybox}\nCOPY . /ctx\nRUN ls /ctx > /listing\n")
    (tmp_path / "kept.txt").write_text("kept")
    (tmp_path / "secret.key").write_text("do not send")
    (tmp_path / ".dockerignore").write_text("secret.key\n")
    env_no_buildkit = dict(up.env, DOCKER_BUILDKIT="0")
    result = subprocess.run([DOCKER, "build", "-q", "-t", "ctx-test", str(tmp_path)], env=env_no_buildkit,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    listing = up.docker("run", "--rm", "ctx-test", "cat", "/listing").stdout.split()
    assert "kept.txt" in listing and "Dockerfile" in listing
    assert "secret.key" not in listing


def test_restart_on_failure_stops_after_three_restarts(up, busybox):
    container = up.docker("run", "-d", "--restart=on-failure:3", busybox, "sh", "-c", "exit 1").stdout.strip()
    deadline = time.time() + 120
    while time.time() < deadline:
        state = json.loads(up.docker("inspect", container).stdout)[0]
        if state["RestartCount"] == 3 and not state["State"]["Running"] and not state["State"]["Restarting"]:
            break
        time.sleep(1)
    assert state["RestartCount"] == 3
    assert state["State"]["ExitCode"] == 1
    up.docker("rm", "-f", container)


def test_save_and_load_of_a_large_image_arrive_intact(up, tmp_path):
    payload = tmp_path / "payload.bin"
    # 80 MB of noise: forty times the agent's 2 MB channel window, so the transfer crosses
    # many window adjustments each way (210 MB took 164 s of a full run under TCG).
    with open(payload, "wb") as f:
        for _ in range(80):
            f.write(os.urandom(1 << 20))
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    # The image: busybox's root filesystem with the payload, imported (a `docker build` of the
    # same under TCG also unpacked its context, copied it and diffed the layer: 237 s against 184 s).
    rootfs = tmp_path / "big-rootfs.tar"
    shutil.copy(busybox_image_tar(tmp_path / "busybox"), rootfs)
    with tarfile.open(rootfs, "a") as tar:
        tar.add(payload, arcname="payload.bin")
    up.docker("import", str(rootfs), "big:1", timeout=600)
    saved = tmp_path / "big.tar"
    up.docker("save", "-o", str(saved), "big:1", timeout=600)
    assert saved.stat().st_size > 80 * (1 << 20)
    up.docker("rmi", "big:1")
    loaded = up.docker("load", "-i", str(saved), timeout=600)
    assert "big:1" in loaded.stdout
    inside = up.docker("run", "--rm", "big:1", "sha256sum", "/payload.bin", timeout=300).stdout.split()[0]
    assert inside == digest
    up.docker("rmi", "big:1")


def test_ssh_runs_commands_with_their_exit_status_and_stdin(up):
    assert up.machine("ssh", "--", "false", check=False).returncode == 1
    result = up.machine("ssh", "--", "echo", "out;", "echo", "err", ">&2;", "exit", "7", check=False)
    assert result.returncode == 7
    assert result.stdout == b"out\n" and result.stderr == b"err\n"
    data = os.urandom(300_000)
    result = up.machine("ssh", "--", "sha256sum", input=data)
    assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_ssh_shell_has_a_terminal(up):
    child = pexpect.spawn(str(machine_binary()), ["ssh"], env=up.env, timeout=60, encoding="utf-8")
    child.setwinsize(40, 132)
    child.sendline("stty size; tty; echo host=$(hostname)")
    child.expect(r"40 132")
    child.expect(r"/dev/pts/\d+")
    child.expect("host=default")
    child.setwinsize(30, 100)  # SIGWINCH reaches the remote terminal
    time.sleep(0.5)
    child.sendline("stty size")
    child.expect(r"30 100")
    child.sendline("exit 6")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 6


def test_cp_round_trip_keeps_bytes_and_mode(up, tmp_path):
    original = tmp_path / "tool.sh"
    original.write_bytes(os.urandom(1_000_000))
    original.chmod(0o751)
    up.machine("cp", str(original), "default:/tmp/")
    assert up.machine("ssh", "--", "stat -c '%a %s' /tmp/tool.sh").stdout.decode().split() == ["751", "1000000"]
    back = tmp_path / "back"
    back.mkdir()
    up.machine("cp", "default:/tmp/tool.sh", str(back))
    assert (back / "tool.sh").read_bytes() == original.read_bytes()
    assert (back / "tool.sh").stat().st_mode & 0o777 == 0o751
    # The user's own symlink, outside any shared folder, is followed as cp follows it (one a
    # guest planted inside a share never is: see test_shares.py).
    target = tmp_path / "target"
    target.write_text("old")
    link = back / "link"
    link.symlink_to(target)
    up.machine("cp", "default:/tmp/tool.sh", str(link))
    assert link.is_symlink() and target.read_bytes() == original.read_bytes()
    # Copying again over the file in the guest replaces it.
    newer = tmp_path / "newer"
    newer.write_bytes(b"second version\n")
    up.machine("cp", str(newer), "default:/tmp/tool.sh")
    assert up.machine("ssh", "--", "cat /tmp/tool.sh").stdout == b"second version\n"
    missing = up.machine("cp", "default:/no/such/file", str(back), check=False)
    assert missing.returncode == 1 and b"does not exist" in missing.stderr


def test_openssh_logs_in_with_the_printed_config(up, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_bytes(up.machine("ssh-config").stdout)
    result = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", "machine-default", "hostname"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "default"


def host_listeners(port):
    """Local addresses listening on a TCP port, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ["/proc/net/tcp", "/proc/net/tcp6"]:
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def listening_addresses(pid):
    """The local addresses of every TCP socket `pid` listens on (its fds against /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ["/proc/net/tcp", "/proc/net/tcp6"]:
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                found.append(fields[1])
    return found


def test_every_listener_of_the_agent_and_qemu_is_on_loopback_and_files_are_private(up, busybox):
    port = free_port()
    container = up.docker("run", "-d", "-p", f"{port}:80", busybox, "sh", "-c", WEB).stdout.strip()
    wait_until_answers(port)
    domain = json.loads(up.machine("inspect").stdout)["domain"]
    qemu = subprocess.run(["pgrep", "-f", f"guest={domain},"], capture_output=True, text=True).stdout.split()
    assert len(qemu) == 1
    loopback = {"0100007F", "00000000000000000000000001000000"}
    for pid in [up.agent_pid(), int(qemu[0])]:
        addresses = listening_addresses(pid)
        assert addresses, pid
        assert {a.rsplit(":", 1)[0] for a in addresses} <= loopback, (pid, addresses)
    up.docker("rm", "-f", container)
    assert stat.S_IMODE(up.socket.stat().st_mode) == 0o600 and stat.S_IMODE(up.folder.stat().st_mode) == 0o700
    for key in ["id_ed25519", "id_ed25519.pub", "known_hosts", "config.json"]:
        assert stat.S_IMODE((up.folder / key).stat().st_mode) == 0o600, key


WEB = "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && head -c 1048576 /dev/urandom > /www/blob && exec httpd -f -p 80 -h /www"


def test_published_port_answers_on_localhost_and_closes_when_stopped(up, busybox):
    port = free_port()
    container = up.docker("run", "-d", "-p", f"{port}:80", busybox, "sh", "-c", WEB).stdout.strip()
    body, waited = wait_until_answers(port)
    assert body == f"hello-{container[:12]}\n".encode()
    assert waited < 2, f"the port answered {waited:.1f} s after docker run returned"
    # Published on every guest address, forwarded on the host's loopback only.
    assert host_listeners(port) == {"0100007F"}
    up.docker("stop", "-t", "1", container)
    stopped = time.monotonic()
    while host_listeners(port):
        assert time.monotonic() - stopped < 2, "the host port stayed open after the container stopped"
        time.sleep(0.05)
    up.docker("rm", container)


def test_loopback_publish_stays_on_loopback(up, busybox):
    port = free_port()
    container = up.docker("run", "-d", "-p", f"127.0.0.1:{port}:80", busybox, "sh", "-c", WEB).stdout.strip()
    wait_until_answers(port)
    assert host_listeners(port) == {"0100007F"}
    up.docker("rm", "-f", container)


def test_fifty_concurrent_connections_each_move_a_megabyte_intact(up, busybox):
    port = free_port()
    container = up.docker("run", "-d", "-p", f"{port}:80", busybox, "sh", "-c", WEB).stdout.strip()
    wait_until_answers(port)
    expected = up.docker("exec", container, "sha256sum", "/www/blob").stdout.split()[0]
    results = []

    def fetch():
        try:
            results.append(hashlib.sha256(http_get(port, "/blob", timeout=120)).hexdigest())
        except OSError as e:
            results.append(repr(e))

    threads = [threading.Thread(target=fetch) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 50
    up.docker("rm", "-f", container)


def test_a_client_that_stops_reading_a_download_leaves_the_agent_idle_and_then_gets_the_rest(up, busybox):
    """A client of a published port that stops reading (a download piped to a pager): the
    agent waits for it without spinning (it used to keep a core busy, polling a session socket
    nobody read), and the stream goes on when the client reads again."""
    port = free_port()
    container = up.docker("run", "-d", "-p", f"127.0.0.1:{port}:80", busybox,
                          "sh", "-c", "while true; do nc -l -p 80 < /dev/zero; done").stdout.strip()
    deadline = time.monotonic() + 30
    while True:
        # Refused until the agent forwards the port; closed at once until nc listens.
        try:
            client = socket.create_connection(("127.0.0.1", port), timeout=30)
            if client.recv(65536):
                break
            client.close()
        except ConnectionRefusedError:
            pass
        assert time.monotonic() < deadline, "the published port never streamed"
        time.sleep(0.2)
    try:
        def read(count):
            got = 0
            while got < count:
                chunk = client.recv(65536)
                assert chunk, f"the stream ended after {got} bytes"
                got += len(chunk)
        read(1 << 20)
        pid = up.agent_pid()
        time.sleep(1)  # the socket buffers and the channel's window fill
        before = cpu_seconds(pid)
        time.sleep(5)
        spent = cpu_seconds(pid) - before
        assert spent < 1.5, f"the agent used {spent:.1f} s of CPU in 5 s while a client did not read"
        read(8 << 20)
    finally:
        client.close()
        up.docker("rm", "-f", container)


def test_busy_host_ports_are_reported_and_the_others_forwarded(up, busybox):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    busy = holder.getsockname()[1]
    udp_holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp_holder.bind(("127.0.0.1", 0))
    udp_busy = udp_holder.getsockname()[1]
    good = free_port()
    try:
        blocked = up.docker("run", "-d", "-p", f"{busy}:80", "-p", f"{good}:80", "-p", f"{udp_busy}:53/udp", "-p", "5353:53/udp",
                            busybox, "sh", "-c", WEB).stdout.strip()
        wait_until_answers(good)  # the other forwards are not disturbed
        time.sleep(0.5)
        listing = json.loads(up.machine("port", "ls", "--format", "json").stdout)
        state = {(f["forward"]["hostPort"], f["forward"]["proto"]): f["state"] for f in listing}
        assert state[(good, "tcp")] == "forwarding"
        assert state[(busy, "tcp")].startswith(f"error: 127.0.0.1:{busy} is already in use by pid {os.getpid()}"), state
        assert state[(5353, "udp")] == "forwarding"  # by QEMU (test_network.py sends datagrams through)
        assert state[(udp_busy, "udp")].startswith(f"error: 127.0.0.1:{udp_busy}/udp is already in use by pid {os.getpid()}"), state
        table = up.machine("port", "ls").stdout.decode()
        assert "already in use" in table and "CONTAINER" in table
        assert f"cannot forward 127.0.0.1:{busy}" in (up.folder / "agent.log").read_text()
        # Once the host's program lets the ports go, the agent takes them on its next retry.
        holder.close()
        udp_holder.close()
        deadline = time.time() + 30
        while True:
            listing = json.loads(up.machine("port", "ls", "--format", "json").stdout)
            state = {(f["forward"]["hostPort"], f["forward"]["proto"]): f["state"] for f in listing}
            if state[(busy, "tcp")] == "forwarding" and state[(udp_busy, "udp")] == "forwarding":
                break
            assert time.time() < deadline, f"the freed ports were never forwarded: {state}"
            time.sleep(1)
        assert http_get(busy).startswith(b"hello-")
        up.docker("rm", "-f", blocked)
    finally:
        holder.close()
        udp_holder.close()


def test_a_killed_agent_comes_back_with_up_and_picks_up_running_containers(up, busybox):
    port = free_port()
    container = up.docker("run", "-d", "-p", f"{port}:80", busybox, "sh", "-c", WEB).stdout.strip()
    wait_until_answers(port)
    os.kill(up.agent_pid(), signal.SIGKILL)
    time.sleep(0.5)
    assert up.docker("version", check=False).returncode != 0
    up.machine("up")
    assert up.docker("version", "--format", "{{.Server.Os}}").stdout.strip() == "linux"
    # The new agent found the container that was already running.
    _, waited = wait_until_answers(port)
    assert waited < 2
    up.docker("rm", "-f", container)


def test_an_agent_killed_mid_transfer_leaves_nothing_that_spoils_the_next_session(up, busybox):
    # The virtio-serial port the agent's session reads (iso/features.txt) outlives the session:
    # bytes the dead session left in it must be skipped by the next one.
    names = [f"flow-{os.getpid()}-{i}" for i in range(2)]
    down = subprocess.Popen([DOCKER, "run", "--rm", "--log-driver", "none", "--name", names[0], busybox, "cat", "/dev/zero"],
                            env=up.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    upward = subprocess.Popen([DOCKER, "run", "-i", "--rm", "--log-driver", "none", "--name", names[1], busybox, "sh", "-c", "cat >/dev/null"],
                              env=up.env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        received = 0
        started = time.monotonic()
        while received < 4 << 20 and time.monotonic() - started < 60:
            received += len(down.stdout.read1(1 << 20))
            upward.stdin.write(b"\0" * (1 << 18))
        assert received >= 4 << 20, "the streams did not flow"
        os.kill(up.agent_pid(), signal.SIGKILL)
    finally:
        for process in (down, upward):
            process.kill()
            process.wait()
    up.machine("up")
    assert up.docker("run", "--rm", busybox, "echo", "clean").stdout.strip() == "clean"
    connected = [line for line in (up.folder / "agent.log").read_text().splitlines() if "connected to default" in line]
    assert connected[-1].endswith("out over its virtio-serial port (aes128-ctr, hmac-md5)"), connected
    up.docker("rm", "-f", *names, check=False)


def test_no_container_can_reach_or_take_the_agents_way_into_the_guest(up, busybox):
    # The agent's sshds read guest ports 61022 (the engine's session) and 61023 (the forwarded
    # ports'), each forwarded from a host loopback port chosen at each boot. A container that
    # reached one, bound it or published it could keep the agent out; one that reached a host
    # end through QEMU's gateway would come in as the host.
    host_ends = {guest_port: int((up.folder / name).read_text())
                 for guest_port, name in ((61022, "ssh-port.input"), (61023, "ports-port.input"))}
    probe = ("for target in {targets}; do"
             " if echo machine-sync intruder | busybox nc -w 3 ${{target% *}} ${{target#* }} >/dev/null 2>&1;"
             " then echo reached $target; else echo blocked $target; fi; done")
    for guest_port, host_end in host_ends.items():
        bridge = up.docker("run", "--rm", busybox, "sh", "-c",
                           "gateway=$(busybox ip route | busybox awk '/default/ { print $3 }'); "
                           + probe.format(targets=f"'$gateway {guest_port}' '10.0.2.15 {guest_port}' '10.0.2.2 {host_end}'")).stdout
        assert bridge.count("blocked") == 3, bridge
        host_network = up.docker("run", "--rm", "--network", "host", busybox, "sh", "-c",
                                 f"busybox timeout 3 busybox nc -l -p {guest_port} 2>&1 | busybox head -n 1; "
                                 + probe.format(targets=f"'127.0.0.1 {guest_port}' '10.0.2.15 {guest_port}' '10.0.2.2 {host_end}'")).stdout
        assert "Address already in use" in host_network and host_network.count("blocked") == 3, host_network
        published = up.docker("run", "-d", "--name", f"publishes-{guest_port}", "-p", f"{guest_port}:80", busybox, "sleep", "600", check=False)
        assert published.returncode != 0 and "address already in use" in published.stderr, published
        up.docker("rm", "-f", f"publishes-{guest_port}", check=False)
    # Nothing got through, and the agent still gets its session back over its own port.
    assert up.machine("ssh", "--", "cat /run/ssh-port-turned-away 2>/dev/null; true").stdout == b""
    os.kill(up.agent_pid(), signal.SIGKILL)
    up.machine("up")
    assert up.docker("run", "--rm", busybox, "echo", "in").stdout.strip() == "in"
    connected = [line for line in (up.folder / "agent.log").read_text().splitlines() if "connected to default" in line]
    assert "out over its virtio-serial port" in connected[-1], connected
    # And its forwarded ports theirs.
    assert any("connected to default for its forwarded ports in at" in line for line in connected[-2:]), connected


def drop_guest_ssh_sessions(up):
    """Kills every sshd process in the guest but the listener (OpenSSH 10 names a connection's
    own processes sshd-session), from a detached shell so this command's own session ends
    first: every session of the agent goes with them."""
    up.machine("ssh", "--", "setsid sh -c 'sleep 1; for p in $(pidof sshd sshd-session); do [ $p = $(cat /run/sshd.pid) ] || kill -9 $p; done'"
               " </dev/null >/dev/null 2>&1 &")
    time.sleep(1.5)


def test_the_agent_reconnects_when_the_guest_drops_its_session(up):
    agent = up.agent_pid()
    drop_guest_ssh_sessions(up)
    started = time.monotonic()
    while up.docker("version", "--format", "{{.Server.Os}}", check=False).returncode != 0:
        assert time.monotonic() - started < 5, "docker did not work again within 5 s"
        time.sleep(0.2)
    assert up.agent_pid() == agent
    assert "reconnected to default" in (up.folder / "agent.log").read_text()


def test_an_engine_restarted_in_the_guest_is_reached_again(up):
    # The agent keeps a channel to the engine open ahead of the next client; one the old
    # engine closed must never be handed to a client.
    agent = up.agent_pid()
    log_before = (up.folder / "agent.log").read_text()
    # Until the old engine has exited: stopping, it still serves a connection it accepted
    # before (a spare opened in the last 5 s: Go's server does not count it idle yet), so an
    # answer before then may be the old engine's last.
    up.machine("ssh", "--", "old=$(pidof dockerd); kill $old; while kill -0 $old 2>/dev/null; do sleep 0.2; done")
    started = time.monotonic()
    while up.docker("version", "--format", "{{.Server.Os}}", check=False).returncode != 0:
        assert time.monotonic() - started < 60, "the supervised engine did not come back within 60 s"
        time.sleep(0.5)
    for _ in range(10):
        assert up.docker("version", "--format", "{{.Server.Os}}").stdout.strip() == "linux"
    assert up.agent_pid() == agent
    assert "lost" not in (up.folder / "agent.log").read_text()[len(log_before):]


GUEST_WEB = "mkdir -p /tmp/w && echo manual-$(hostname) > /tmp/w/index.html && busybox httpd -p 9999 -h /tmp/w"


def test_restart_keeps_restart_always_containers_manual_forwards_and_the_chosen_platforms(up, busybox, foreign):
    # Applied at once, and registered from the seed at the boot below.
    assert "applied now: emulating linux/arm64\n" in up.machine("set", "--platforms", "arm64").stdout.decode()
    host_port = free_port()
    up.machine("port", "add", f"{host_port}:9999")
    up.machine("ssh", "--", GUEST_WEB)
    assert wait_until_answers(host_port)[0] == b"manual-default\n"
    container = up.docker("run", "-d", "--restart=always", "--name", "keeper", busybox, "sleep", "100000").stdout.strip()
    up.machine("restart")
    # The guest's own listener is gone with the reboot; started again, it is forwarded again.
    up.machine("ssh", "--", GUEST_WEB)
    assert wait_until_answers(host_port)[0] == b"manual-default\n"
    listing = up.machine("port", "ls").stdout.decode()
    assert re.search(rf"127\.0\.0\.1:{host_port}\s+127\.0\.0\.1:9999\s+tcp\s+manual\s+forwarding", listing), listing
    up.machine("port", "rm", str(host_port))
    started = time.monotonic()
    while time.monotonic() - started < 60:
        state = up.docker("inspect", "--format", "{{.State.Running}}", container, check=False)
        if state.stdout.strip() == "true":
            break
        time.sleep(1)
    assert state.stdout.strip() == "true"
    up.docker("rm", "-f", container)
    try:
        assert run_as(up, "linux/arm64", foreign["linux/arm64"]) == "aarch64"
        assert "exec format error" in run_as(up, "linux/riscv64", foreign["linux/riscv64"])
    finally:
        up.machine("set", "--platforms", "all")
    assert run_as(up, "linux/riscv64", foreign["linux/riscv64"]) == "riscv64"


def test_engine_settings_given_to_up_reach_the_engine_that_runs_now(up):
    result = up.machine("up", "--engine-env", "HTTP_PROXY=http://proxy.invalid:3128",
                        "--registry-mirror", "https://mirror.example.com", "--insecure-registry", "registry.local:5000")
    assert b"engine settings applied" in result.stderr, result.stderr
    info = json.loads(up.docker("info", "--format", "{{json .}}").stdout)
    assert info["HttpProxy"] == "http://proxy.invalid:3128"
    assert info["RegistryConfig"]["Mirrors"] == ["https://mirror.example.com/"]
    assert info["RegistryConfig"]["IndexConfigs"]["registry.local:5000"]["Secure"] is False
    # Kept in the config: the same `up` again changes nothing.
    assert up.machine("up").stdout.decode().startswith("default is already up")
    assert up.config()["engine"]["environment"] == ["HTTP_PROXY=http://proxy.invalid:3128"]


def test_another_host_key_on_the_machines_port_is_refused(up, tmp_path):
    up.machine("stop")
    port = up.config()["sshPort"]
    key = tmp_path / "impostor_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = tmp_path / "sshd_config"
    config.write_text(f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {key}\nAuthorizedKeysFile {up.folder}/id_ed25519.pub\n"
                      "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile none\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    impostor = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        result = up.machine("ssh", "--", "echo", "should-not-run", check=False)
        assert result.returncode == 1
        assert b"should-not-run" not in result.stdout
        assert re.search(rb"refusing to talk to default: .*not the pinned one", result.stderr), result.stderr
        assert b"known_hosts" in result.stderr  # the hint says which file holds the pinned key
    finally:
        impostor.terminate()
        impostor.wait(timeout=10)


def test_rm_removes_the_docker_context(up):
    up.machine("rm", "--force", "default")
    contexts = up.docker("context", "ls", "--format", "{{.Name}}").stdout.split()
    assert "machine-default" not in contexts
    assert not up.socket.exists()


def engine_pid(up):
    return up.machine("ssh", "--", "cat /run/docker.pid").stdout.decode().strip()


def test_a_busy_guest_keeps_its_engine(up, busybox):
    """What a compose file of twenty services does to the default machine (1 GiB): 100
    concurrent `docker version` and 20 concurrent `docker run --rm` all succeed, and the engine
    is the one that started (without swap the OOM killer took dockerd here). runc starts them
    from one sealed copy of itself in memory: when it copied itself for each (9-11 MB apiece),
    the 20 starts held 200-300 MB more at their peak, and on Engine 26 one of them failed once
    in a full run, with runc's "read init-p: connection reset by peer". (One round: a second
    cost CI 70 s; memory given back when containers end is test_memory_a_container_frees_....)"""
    from concurrent.futures import ThreadPoolExecutor
    runc = up.machine("ssh", "--", "ls -l /var/lib/machine/engine/current/bin/runc").stdout.decode()
    assert "-> /memfd:runc_cloned:" in runc, runc
    before = engine_pid(up)
    with ThreadPoolExecutor(100) as pool:
        versions = list(pool.map(lambda _: up.docker("version", "--format", "{{.Server.Version}}", check=False), range(100)))
    failed = [r.stderr for r in versions if r.returncode != 0]
    assert not failed, (len(failed), failed[:3])
    with ThreadPoolExecutor(20) as pool:
        runs = list(pool.map(lambda _: up.docker("run", "--rm", busybox, "true", check=False, timeout=900), range(20)))
    failed = [r.stderr for r in runs if r.returncode != 0]
    assert not failed, (len(failed), failed[:3])
    assert engine_pid(up) == before


def test_out_of_memory_the_kernel_kills_the_container_not_the_engine(up, busybox):
    before = engine_pid(up)
    swap = up.machine("ssh", "--", "free -m | grep Swap").stdout.decode().split()
    assert int(swap[1]) >= 256, swap  # compressed swap in RAM, half the machine's memory
    # `tail` keeps a line with no end: all of /dev/zero, until the kernel stops it.
    hog = up.docker("run", "--rm", busybox, "busybox", "tail", "/dev/zero", check=False, timeout=600)
    assert hog.returncode == 137, (hog.returncode, hog.stderr)
    killed = up.machine("ssh", "--", "dmesg | grep 'Killed process'").stdout.decode()
    assert "(busybox)" in killed and "(dockerd)" not in killed and "(containerd)" not in killed, killed
    assert engine_pid(up) == before
    assert up.docker("run", "--rm", busybox, "echo", "still here").stdout == "still here\n"


def gzipped_layer(size, chunk=16 << 20):
    """A gzipped tar of one file of `size` bytes, as `docker import` takes it: a 16 KiB random
    block over and over, so the disk gets `size` bytes that are not zeros (QEMU keeps written
    zeros too, but a filesystem may not), while what crosses to the guest is a few MiB. One
    gzip member per chunk, compressed once (gzip readers take members one after another):
    importing 1 GiB of noise took 136 s under TCG, most of it the guest's own unpacking."""
    assert size % chunk == 0
    blob = tarfile.TarInfo("blob")
    blob.size = size
    yield gzip.compress(blob.tobuf(tarfile.USTAR_FORMAT))
    member = gzip.compress(os.urandom(16 << 10) * (chunk >> 14), compresslevel=9)
    for _ in range(size // chunk):
        yield member
    yield gzip.compress(bytes(2 * tarfile.BLOCKSIZE))  # the end of the archive


def test_space_freed_in_the_guest_returns_to_the_hosts_disk(up):
    """A 512 MiB image loaded, then removed and pruned: the data disk's file on the host, by what
    it holds (`du`, not its length), falls back to within 10% of where it was, within 2 minutes
    (the guest trims every minute, and QEMU punches the trimmed blocks out of the qcow2 file).
    A fresh machine's disk holds about 10 MiB (the engine is on a disk of its own), so 10% of
    it is less than what the engine's own records grow by meanwhile: 32 MiB is allowed then,
    a sixteenth of what was loaded. (It loaded 1 GiB until the suite had to get shorter: the
    guest's unpacking is most of the test's time under TCG.)"""
    disk = up.folder / "data.qcow2"

    def held():
        return os.stat(disk).st_blocks * 512

    before = held()
    load = subprocess.Popen([DOCKER, "import", "-", "e2e-big:1"], env=up.env, stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for part in gzipped_layer(512 << 20):
        load.stdin.write(part)
    load.stdin.close()
    errors = load.stderr.read()
    assert load.wait(timeout=900) == 0, errors
    loaded = held()
    # Most of it landed as new blocks (blocks the earlier tests freed and the guest has not
    # trimmed yet take some: 444 of 512 MiB in one full run).
    assert loaded >= before + (384 << 20), (before >> 20, loaded >> 20)
    up.docker("rmi", "e2e-big:1")
    up.docker("system", "prune", "-af")
    allowed = max(before * 1.1, before + (32 << 20))
    deadline = time.time() + 120
    while held() > allowed and time.time() < deadline:
        time.sleep(5)
    assert held() <= allowed, f"MiB held: {before >> 20} before, {loaded >> 20} loaded, {held() >> 20} 2 min after the prune"
    # What `inspect` and `ls` say the disk holds here is what du sees.
    shown = json.loads(up.machine("inspect").stdout)["dataDiskOnHost"]["allocatedBytes"]
    assert abs(shown - held()) < 64 << 20, (shown, held())
    row = [line for line in up.machine("ls").stdout.decode().splitlines() if line.startswith("default ")][0]
    assert re.search(rf"\b{up.config()['diskGiB']} GiB \(\d+\.\d GiB\)", row), row


def qemu_resident(up):
    """QEMU's resident memory, as `machine inspect` reports it."""
    return json.loads(up.machine("inspect").stdout)["qemuResidentBytes"]


def test_memory_a_container_frees_goes_back_to_the_host(up, busybox):
    """A container writes 600 MiB to a tmpfs and exits: QEMU's resident memory is back within
    64 MiB of where it was within 30 s (the guest reports the pages it frees: free page
    reporting through the balloon), without a pause or a command from anyone."""
    # The same container once with 1 MiB first: under TCG, QEMU translates the code it runs the
    # first time into its code cache, which grows for good and is not what the container freed.
    fill = ["run", "--rm", "--tmpfs", "/big:size=700m", busybox, "dd", "if=/dev/zero", "of=/big/f", "bs=1M"]
    up.docker(*fill, "count=1", timeout=600)
    domain = json.loads(up.machine("inspect").stdout)["domain"]
    pid = subprocess.run(["pgrep", "-f", f"guest={domain},"], capture_output=True, text=True).stdout.split()[0]
    with open(f"/proc/{pid}/status") as status:
        rss = [line for line in status if line.startswith("VmRSS:")][0]
    before = qemu_resident(up)
    assert abs(before - int(rss.split()[1]) * 1024) < 64 << 20, (before, rss)  # what inspect says is QEMU's
    up.docker(*fill, "count=600", timeout=600)
    deadline = time.time() + 30
    while qemu_resident(up) > before + (64 << 20) and time.time() < deadline:
        time.sleep(2)
    after = qemu_resident(up)
    assert after <= before + (64 << 20), f"MiB resident: {before >> 20} before, {after >> 20} 30 s after the container ended"


def wait_until_asleep(up, limit=60):
    """Waits for `machine status` to say sleeping."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if up.machine("status").stdout.decode().strip() == "sleeping":
            return
        time.sleep(0.5)
    raise AssertionError(f"not asleep {limit} s after its last client:\n" + (tail(up.folder / "agent.log") or ""))


def qemu_pid(up):
    domain = json.loads(up.machine("inspect").stdout)["domain"]
    return subprocess.run(["pgrep", "-f", f"guest={domain},"], capture_output=True, text=True).stdout.split()[0]


def cpu_ticks(pid):
    """User and system CPU time of a process, in clock ticks (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid):
    return cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")


def test_an_idle_machine_sleeps_and_each_kind_of_client_wakes_it(up, busybox):
    """With a short idle time, the machine falls asleep (its QEMU runs no guest CPU); then
    `docker ps`, a request to a published port of a container started before the sleep, and a
    `docker run -v` of a host folder each wake it and succeed, twice each over 6 sleeps, and that
    container never restarts. `up`, `ssh` and `stop` work from sleep too; `suspend` of this
    machine (its home is shared) is refused with the sleep named in its place."""
    up.machine("set", "--idle-sleep", "3s")
    folder = Path(tempfile.mkdtemp(prefix=".machine-e2e-", dir=Path.home().resolve()))
    port = free_port()
    try:
        container = up.docker("run", "-d", "-p", f"127.0.0.1:{port}:80", busybox, "sh", "-c", WEB).stdout.strip()
        wait_until_answers(port)
        before = up.docker("inspect", "-f", "{{.State.StartedAt}} {{.RestartCount}}", container).stdout
        for cycle in range(6):
            wait_until_asleep(up)
            if cycle == 0:
                # Measured after 2 s asleep: QEMU's main loop may still finish what the guest
                # handed it before the pause (30 ms once, in CI). An idle guest running costs
                # about 11 ticks (10 ms each) in 4 s here; asleep, none.
                pid = qemu_pid(up)
                time.sleep(2)
                ticks = cpu_ticks(pid)
                time.sleep(4)
                assert cpu_ticks(pid) - ticks <= 2, "QEMU used CPU while the machine slept"
            (folder / "n").write_text(f"{cycle}\n")
            if cycle % 3 == 0:
                assert container[:12] in up.docker("ps").stdout
            elif cycle % 3 == 1:
                assert http_get(port, timeout=30) == f"hello-{container[:12]}\n".encode()
            else:
                out = up.docker("run", "--rm", "-v", f"{folder}:/x", busybox, "sh", "-c", "cat /x/n; echo back > /x/back").stdout
                assert out == f"{cycle}\n" and (folder / "back").read_text() == "back\n"
        assert up.docker("inspect", "-f", "{{.State.StartedAt}} {{.RestartCount}}", container).stdout == before
        assert (up.folder / "agent.log").read_text().count("woke after") >= 6
        # Its agent asked libvirt through `machine agent-libvirt` processes for each sleep and
        # wake: it never loaded libvirt's libraries (about 11 MB resident) itself.
        agent = (up.folder / "agent.pid").read_text().strip()
        assert "libvirt" not in Path(f"/proc/{agent}/maps").read_text()
        # The guest's clock was put right at each wake: it is the host's, give or take.
        guest_time = int(up.machine("ssh", "--", "date +%s").stdout)
        assert abs(guest_time - time.time()) < 3

        # A guest whose CPU works stays awake, also once the guest's sshd has dropped the
        # session the agent looks at its CPU with: it does so 60 s after the session's last use
        # (its keepalives unanswered), and a look comes once an idle time, 5 minutes by default.
        # Killing the guest's SSH sessions here drops it as those 60 s would.
        spinner = up.docker("run", "-d", busybox, "sh", "-c", "while :; do :; done").stdout.strip()
        drop_guest_ssh_sessions(up)
        slept = (up.folder / "agent.log").read_text().count("asleep after")
        time.sleep(15)
        assert up.machine("status").stdout.decode().strip() == "running"
        assert (up.folder / "agent.log").read_text().count("asleep after") == slept, "a busy guest was put to sleep"
        up.docker("rm", "-f", spinner)

        wait_until_asleep(up)
        refused = up.machine("suspend", check=False)
        assert refused.returncode != 0 and b"sleeps by itself after 3s without use" in refused.stderr, refused.stderr
        woke = up.machine("up")
        assert b"was asleep; waking it" in woke.stderr, woke.stderr
        assert up.machine("status").stdout.decode().strip() == "running"
        wait_until_asleep(up)
        assert up.machine("ssh", "--", "echo", "awake").stdout == b"awake\n"
        wait_until_asleep(up)
        assert b"stopped" in up.machine("stop").stdout
        assert up.machine("status").stdout.decode().strip() == "stopped"
    finally:
        shutil.rmtree(folder)
        up.machine("set", "--idle-sleep", "5m")


# --- programs of other platforms --------------------------------------------------------------

def test_images_of_other_platforms_run_and_build_while_the_engine_stays_x86_64(up, busybox, foreign, tmp_path):
    for platform, image in foreign.items():
        recorded = up.docker("image", "inspect", image, "--format", "{{.Os}}/{{.Architecture}}{{if .Variant}}/{{.Variant}}{{end}}").stdout.strip()
        assert recorded.startswith(platform), recorded
        assert run_as(up, platform, image) == UNAME[platform]
    # A build whose RUN step runs arm64 programs (inside the build's own root, where no
    # emulator is), and the image it made runs.
    (tmp_path / "Dockerfile").write_text(f"FROM {foreign['linux/arm64']}\nRUN uname -m > /built-on\nCMD [\"cat\", \"/built-on\"]\n")
    up.docker("build", "--platform", "linux/arm64", "-t", "machine-test/built:arm64", str(tmp_path))
    assert up.docker("run", "--rm", "--platform", "linux/arm64", "machine-test/built:arm64").stdout.strip() == "aarch64"
    assert up.docker("image", "inspect", "machine-test/built:arm64", "--format", "{{.Architecture}}").stdout.strip() == "arm64"
    # argv[0] reaches the program as the caller gave it ("cat", not the path the kernel
    # found, "/bin/cat"): the P flag.
    cmdline = up.docker("run", "--rm", "--platform", "linux/arm64", foreign["linux/arm64"], "cat", "/proc/self/cmdline").stdout
    assert cmdline.split("\0")[:2] == ["cat", "/proc/self/cmdline"], cmdline
    # Native containers, and the engine itself, are x86-64 as before.
    assert up.docker("run", "--rm", busybox, "busybox", "uname", "-m").stdout.strip() == "x86_64"
    assert up.docker("info", "--format", "{{.Architecture}}").stdout.strip() == "x86_64"
    assert up.docker("version", "--format", "{{.Server.Os}}/{{.Server.Arch}}").stdout.strip() == "linux/amd64"


def test_inspect_checks_each_platform_and_reports_a_broken_handler_as_failing(up):
    platforms = json.loads(up.machine("inspect").stdout)["platforms"]
    everything = ["linux/arm64", "linux/arm/v7", "linux/riscv64", "linux/ppc64le", "linux/s390x"]
    assert platforms == {"native": "linux/amd64", "setting": "all", "emulation": "on",
                         "emulated": {platform: "works" for platform in everything}}
    # A handler that is registered and enabled but runs the wrong emulator (podman #28181's
    # kind): listed as failing, not as present.
    table = up.machine("ssh", "--", "cat /run/machine/emulators/*/platforms.txt").stdout.decode()
    magic, mask = next(line.split()[2:4] for line in table.splitlines() if line.startswith("linux/riscv64 "))
    up.machine("ssh", "--", "h=/proc/sys/fs/binfmt_misc/qemu-riscv64; echo -1 >$h; cd /run/machine/emulators/*/ && "
               f"printf '%s' ':qemu-riscv64:M::{magic}:{mask}:'$PWD'/aarch64-binfmt-P:POCF' >/proc/sys/fs/binfmt_misc/register")
    try:
        emulated = json.loads(up.machine("inspect").stdout)["platforms"]["emulated"]
        assert emulated["linux/riscv64"].startswith("failing: its test program exited with"), emulated
        assert emulated["linux/arm64"] == "works"
    finally:
        # The guest's own registration replaces the handlers it made (the broken one is at
        # its path too).
        up.machine("ssh", "--", "/var/lib/machine/engine/current/platforms register")
    assert json.loads(up.machine("inspect").stdout)["platforms"]["emulated"]["linux/riscv64"] == "works"


def test_with_emulation_off_other_platforms_fail_as_the_engine_says_until_it_is_on_again(up, busybox, foreign):
    out = up.machine("set", "--platforms", "none").stdout.decode()
    assert "platforms all -> none; applied now: emulation of other platforms is off" in out, out
    try:
        for platform, image in foreign.items():
            assert "exec format error" in run_as(up, platform, image)
        assert up.docker("run", "--rm", busybox, "busybox", "uname", "-m").stdout.strip() == "x86_64"
        platforms = json.loads(up.machine("inspect").stdout)["platforms"]
        assert (platforms["setting"], platforms["emulation"], platforms["emulated"]) == ("none", "off", {})
        # Not a platform machine knows: refused before anything changes.
        refused = up.machine("set", "--platforms", "linux/mips", check=False)
        assert refused.returncode == 64 and b"linux/arm64" in refused.stderr
    finally:
        up.machine("set", "--platforms", "all")
    assert run_as(up, "linux/arm/v7", foreign["linux/arm/v7"]) == "armv7l"

