"""Faults a machine meets in the field, each ending with a working engine and the data written
before the fault still there: QEMU killed, the domain paused during boot (by a user, or by a
KVM that cannot run the guest), `machine up` killed during its engine wait, many stop/start
cycles. The tests that need no machine of another shape take turns on one (a create, boot and
rm each cost about 45 s under TCG): each finds it up with the data written before its fault,
whatever the test before left (running, stopped, removed), so none depends on another's order."""
import contextlib
import json
import re
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from pathlib import Path

from conftest import Up, machine_binary
from qemu_guest import busybox_image_tar, free_port


def virsh(*args, check=True):
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True, text=True, check=check, timeout=60)


def domain_state(domain):
    result = virsh("domstate", "--reason", domain, check=False)
    return result.stdout.strip() if result.returncode == 0 else "absent"


def wait_for_domain(domain, state="running", timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if domain_state(domain).startswith(state):
            return
        time.sleep(0.05)
    raise AssertionError(f"{domain} never reached {state}: {domain_state(domain)}")


def wait_for_inspect(m, timeout=120):
    """`machine inspect` once the machine exists (while another command boots it)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        inspected = m.machine("inspect", check=False)
        if inspected.returncode == 0:
            return json.loads(inspected.stdout)
        time.sleep(0.05)
    raise AssertionError(f"machine inspect never answered: {inspected.stderr!r}")


@contextlib.contextmanager
def background_up(m, *args):
    """`machine up` running while the test acts on the machine; killed if the test fails first,
    since an `up` left running holds the machine's lock and the teardown's rm could not run."""
    booting = subprocess.Popen([str(machine_binary()), "up", "--no-context", *args], env=m.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield booting
    finally:
        if booting.poll() is None:
            booting.kill()
            booting.wait()


def qemu_pid(domain):
    out = subprocess.run(["pgrep", "-f", f"guest={domain},"], capture_output=True, text=True).stdout.split()
    assert len(out) == 1, out
    return int(out[0])


@pytest.fixture(scope="module")
def faults_home(tmp_path_factory, cache_dir, built):
    """The home of the machine the fault tests share, removed after the last."""
    m = Up(tmp_path_factory.mktemp("faults-home"), cache_dir, tmp_path_factory.mktemp("faults-work"))
    m.env["DOCKER_HOST"] = f"unix://{m.socket}"
    m.busybox = busybox_image_tar(m.work / "busybox")
    try:
        yield m
    finally:
        # A guest left running would slow every later test.
        m.machine("rm", "--force", "default", check=False, timeout=180)


@pytest.fixture
def machine(faults_home):
    """The shared machine up, with a named volume written and synced before the fault. One a
    test left stopped is started, one it removed is made again, one it broke (a failed test)
    is removed and made again."""
    m = faults_home
    if m.machine("up", "--no-context", "--no-mounts", check=False).returncode != 0:
        m.machine("rm", "--force", "default", check=False, timeout=180)
        m.machine("up", "--no-context", "--no-mounts")
    m.domain = json.loads(m.machine("inspect").stdout)["domain"]
    if m.docker("image", "inspect", "busybox:latest", check=False).returncode != 0:
        m.docker("import", str(m.busybox), "busybox:latest")
    m.docker("run", "--rm", "-v", "kept:/data", "busybox", "sh", "-c", "echo before the fault > /data/f && sync")
    return m


def agent_log_from(m, offset):
    """What the agent logged from `offset` (a length read before the fault) on."""
    return (m.folder / "agent.log").read_text()[offset:]


def agent_log_length(m):
    return len((m.folder / "agent.log").read_text())


def assert_engine_and_data(m):
    out = m.docker("run", "--rm", "-v", "kept:/data", "busybox", "cat", "/data/f").stdout
    assert out == "before the fault\n"


def wait_for_exit(pid, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"process {pid} still runs after {timeout} s")


def test_qemu_killed_then_up_boots_again_with_a_new_agent(machine):
    old_agent = machine.agent_pid()
    logged = agent_log_length(machine)
    os.kill(qemu_pid(machine.domain), signal.SIGKILL)
    wait_for_domain(machine.domain, "shut off")
    status = machine.machine("status").stdout.decode()
    assert status.startswith("stopped (crashed)"), status
    assert "QEMU:" in status, status
    # The agent served that boot only: it ends with it, and docker says nothing listens.
    wait_for_exit(old_agent, 30)
    assert "exiting: its domain has stopped" in agent_log_from(machine, logged)
    gone = machine.docker("version", check=False, timeout=30)
    assert gone.returncode != 0 and "Cannot connect to the Docker daemon" in gone.stderr, gone.stderr
    started = time.time()
    machine.machine("up", "--no-context")
    assert machine.agent_pid() != old_agent
    # The engine answers as soon as the new boot's is ready, not after the old agent gives up.
    assert time.time() - started < 150
    assert_engine_and_data(machine)


def test_paused_during_boot_is_named_then_up_resumes_it_and_rm_force_removes_it(machine):
    machine.machine("stop")
    with background_up(machine) as booting:
        wait_for_domain(machine.domain)
        virsh("suspend", machine.domain)
        out, err = booting.communicate(timeout=120)
    assert booting.returncode == 1, out + err
    assert "default did not boot: the guest was paused (user)" in err, err
    assert "`machine start default` resumes it" in err, err
    assert machine.machine("status").stdout.decode().strip() == "paused (user)"
    up = machine.machine("up", "--no-context")
    assert "default was paused; resuming it" in up.stderr.decode()
    assert_engine_and_data(machine)
    # The guest's clock stopped while it was paused; up set it again.
    guest = int(machine.machine("ssh", "--", "date +%s").stdout.decode())
    assert abs(guest - time.time()) < 3
    # A paused machine is refused by a plain rm, and removed by rm --force.
    virsh("suspend", machine.domain)
    refused = machine.machine("rm", "default", check=False)
    assert refused.returncode == 1
    assert "default was paused (user) and still has a QEMU" in refused.stderr.decode()
    machine.machine("rm", "--force", "default")
    assert domain_state(machine.domain) == "absent"
    assert not machine.folder.exists()


def test_stop_of_a_machine_qemu_paused_by_itself_then_up_killed_during_its_engine_wait(machine):
    # What a KVM internal error does: QEMU stops the CPUs and libvirt knows no reason.
    virsh("qemu-monitor-command", "--hmp", machine.domain, "stop")
    status = machine.machine("status").stdout.decode()
    assert status.startswith("paused (unknown)"), status
    stopped = machine.machine("stop", "--timeout", "5")
    assert stopped.stdout.decode().strip() == "default stopped (hard stop)"
    # `up` killed (kill -9) while it waits for the engine leaves nothing the next `up` trips on.
    with background_up(machine) as booting:
        deadline = time.time() + 180
        seen = ""
        for line in booting.stderr:
            seen += line
            if "waiting for the engine" in line or time.time() > deadline:
                break
    assert "waiting for the engine" in seen, seen
    machine.machine("up", "--no-context")
    assert_engine_and_data(machine)


def guest_clock_offset(m):
    before = time.time()
    guest = int(m.machine("ssh", "--", "date +%s").stdout.decode())
    return guest - (before + time.time()) / 2


def test_after_a_host_sleep_the_agent_sets_the_guest_clock(machine):
    # A host asleep stops the guest's CPUs and its clock with them; pausing the domain does the same.
    assert abs(guest_clock_offset(machine)) < 2
    logged = agent_log_length(machine)
    # 25 s paused: five times the agent's threshold for a stall (Agent.stallThreshold, 5 s),
    # and longer than a silence that ends the sessions of a guest whose domain runs
    # (AgentSession.unreachableAfter, 20 s): a paused one is waited for.
    virsh("suspend", machine.domain)
    time.sleep(25)
    virsh("resume", machine.domain)
    resumed = time.time()
    offset = None
    while time.time() - resumed < 5:
        offset = guest_clock_offset(machine)
        if abs(offset) < 2:
            break
        time.sleep(0.2)
    assert abs(offset) < 2, f"the guest clock is still {offset:.1f} s off, {time.time() - resumed:.1f} s after the resume"
    log = agent_log_from(machine, logged)
    assert "set the clock of default after" in log
    assert "lost" not in log, log
    assert_engine_and_data(machine)


def answer(port):
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
    except OSError:
        return None


def answers_within(port, seconds, what):
    """Asks the published port until it answers "hi", failing after `seconds`: the agent's
    ports session comes back by itself after its guest was restored (it notices the cut
    within its 2 s keepalive, then reconnects), and not necessarily before `up` returns,
    which waits for the engine."""
    deadline = time.time() + seconds
    while answer(port) != b"hi\n":
        assert time.time() < deadline, f"the published port did not answer within {seconds} s {what}"
        time.sleep(0.2)


def qemu_forwards_udp(machine, port):
    """Whether the machine's QEMU forwards UDP from host port `port` (its user network's
    table, HMP `info usernet`)."""
    table = virsh("qemu-monitor-command", machine.domain, "--hmp", "info usernet", check=False).stdout
    return str(port) in re.findall(r"UDP\[HOST_FORWARD\]\s+-?\d+\s+\S+\s+(\d+)\s", table)


def within(seconds, check):
    deadline = time.time() + seconds
    while not check():
        if time.time() > deadline:
            return False
        time.sleep(0.5)
    return True


def test_suspend_and_resume_keep_containers_their_ports_and_the_clock(machine):
    port = free_port()
    machine.docker("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox", "sh", "-c",
                   "mkdir /w && echo hi > /w/index.html && exec httpd -f -p 80 -h /w")
    answers_within(port, 20, "after the container started")
    started_at = machine.docker("inspect", "-f", "{{.State.StartedAt}}", "web").stdout
    uptime = float(machine.machine("ssh", "--", "cat /proc/uptime").stdout.split()[0])
    assert machine.machine("suspend").stdout.decode().startswith("default suspended")
    assert machine.machine("status").stdout.decode().strip() == "suspended"
    assert not machine.socket.exists() and answer(port) is None
    time.sleep(5)  # the host's clock moves on; the saved guest's does not
    resumed = machine.machine("resume")
    assert resumed.stdout.decode().strip() == "default resumed", resumed
    assert b"resuming default from its saved state" in resumed.stderr
    # The same container, never restarted, in a guest that did not boot again.
    assert machine.docker("inspect", "-f", "{{.State.StartedAt}}", "web").stdout == started_at
    assert float(machine.machine("ssh", "--", "cat /proc/uptime").stdout.split()[0]) > uptime
    answers_within(port, 15, "after `machine resume`")
    assert abs(guest_clock_offset(machine)) < 2
    assert_engine_and_data(machine)
    # A save and restore behind machine's back (libvirt-guests makes one at the host's shutdown)
    # cuts the agent's sessions without a word; the guest still lets the next one in, so the
    # `up` a user runs afterwards is quick (it waited the engine's 180 s out before).
    # The agent follows the boot into the restore's new QEMU (same UUID) rather than ending
    # with the saved one's: ended, it could leave after `up` had found it serving.
    # A UDP forward is QEMU's own, given to it through its monitor: the restored QEMU starts
    # from the domain's definition without it, and the agent gives it again.
    udp = free_port(socket.SOCK_DGRAM)
    machine.machine("port", "add", f"{udp}:7/udp")
    assert within(30, lambda: qemu_forwards_udp(machine, udp)), "QEMU never forwarded the UDP port"
    agent = machine.agent_pid()
    virsh("managedsave", machine.domain)
    virsh("start", machine.domain)
    started = time.time()
    machine.machine("up", "--no-context", timeout=120)
    assert time.time() - started < 60
    time.sleep(10)  # past the two looks that would end an agent whose domain has stopped
    still = (machine.folder / "agent.pid").exists() and machine.agent_pid() == agent
    assert still, "the agent ended with the saved QEMU instead of following the restored one"
    answers_within(port, 15, "after a restore behind machine's back and `up`")
    assert within(30, lambda: qemu_forwards_udp(machine, udp)), "the restored QEMU does not forward the UDP port"
    machine.machine("port", "rm", f"{udp}/udp")
    assert_engine_and_data(machine)
    # A saved state from another shape is thrown away, and the machine boots afresh.
    machine.machine("suspend")
    changed = machine.machine("up", "--no-context", "--memory", "1200M")
    assert b"booting it afresh" in changed.stderr, changed.stderr
    assert json.loads(machine.machine("inspect").stdout)["config"]["memoryMiB"] == 1200
    assert_engine_and_data(machine)
    # `stop` of a suspended machine is still a clean shutdown (the start after a stop is
    # test_stop_start_cycles_leave_one_agent_and_one_qemu's).
    machine.machine("suspend")
    assert machine.machine("stop").stdout.decode().strip() == "default stopped"


def agents_of(machine, name="default"):
    """Pids of this home's `machine agent ... NAME` processes."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            args = [a for a in open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0") if a]
            environ = open(f"/proc/{entry}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if args[1:2] == [b"agent"] and args[-1] == name.encode() and f"MACHINE_HOME={machine.home}".encode() in environ:
            pids.append(int(entry))
    return pids


def test_stop_start_cycles_leave_one_agent_and_one_qemu(machine):
    # Each cycle is a full TCG boot (about 25-30 s). A leak grows by one agent or QEMU a cycle,
    # so two cycles show it (three agents or QEMUs instead of one) as well as five did.
    for cycle in range(2):
        stopped = machine.machine("stop")
        assert stopped.stdout.decode().strip() == "default stopped", f"cycle {cycle}: {stopped.stdout!r}"
        machine.machine("start")
        assert machine.docker("version", "--format", "{{.Server.Os}}").stdout.strip() == "linux", f"cycle {cycle}"
    assert agents_of(machine) == [machine.agent_pid()]
    domain = json.loads(machine.machine("inspect").stdout)["domain"]
    qemus = subprocess.run(["pgrep", "-f", f"guest={domain},"], capture_output=True, text=True).stdout.split()
    assert len(qemus) == 1, qemus
    assert_engine_and_data(machine)


def test_a_guest_that_kvm_stops_at_boot_is_booted_again_under_tcg(tmp_path, cache_dir, built):
    # A host whose KVM runs a test firmware but stops the real kernel ("KVM internal error",
    # domain paused): the probe is forced to say yes, and the test stops the guest's CPUs
    # through QEMU's monitor as soon as it runs, which libvirt sees as a pause without a reason.
    cache = tmp_path / "cache"
    cache.mkdir()
    for folder in ("images", "engine"):
        (cache / folder).symlink_to(cache_dir / folder)
    m = Up(tmp_path / "home", cache, tmp_path / "work")
    m.env["MACHINE_TEST_PRETEND_KVM"] = "1"
    m.env["DOCKER_HOST"] = f"unix://{m.socket}"
    try:
        with background_up(m, "--no-mounts") as booting:
            domain = wait_for_inspect(m)["domain"]
            wait_for_domain(domain)
            virsh("qemu-monitor-command", "--hmp", domain, "stop")
            out, err = booting.communicate(timeout=300)
        assert booting.returncode == 0, out + err
        assert "starting default (kvm," in err, err
        assert "KVM could not run default: the guest was paused (unknown)" in err, err
        assert "starting default (tcg," in err, err
        assert m.docker("version", "--format", "{{.Server.Os}}").stdout.strip() == "linux"
        # Remembered for this host boot: the next start goes straight to TCG.
        assert (cache / "kvm-failed").exists()
        m.machine("stop")
        again = m.machine("start").stderr.decode()
        assert "starting default (tcg," in again and "KVM could not run" not in again, again
    finally:
        m.machine("rm", "--force", "default", check=False, timeout=180)


def test_an_agent_ends_with_its_machines_folder_and_never_serves_the_next_machine(machine):
    """The folder deleted under a running machine (a tool cleaned a work tree): its agent ends,
    rm --force leaves no process, and a new machine at the same path is served by its own."""
    old_agent = machine.agent_pid()
    subprocess.run(["rm", "-rf", str(machine.folder)], check=True)
    wait_for_exit(old_agent, 60)
    machine.machine("rm", "--force", "default")
    assert agents_of(machine) == []
    assert domain_state(machine.domain) == "absent"
    machine.machine("up", "--no-context", "--no-mounts")
    assert agents_of(machine) == [machine.agent_pid()]
    assert machine.docker("version", "--format", "{{.Server.Version}}", timeout=60).stdout.strip()
    log = (machine.folder / "agent.log").read_text()
    assert "connected to default" in log, log


def test_an_unreachable_guest_fails_docker_within_30_s_then_serves_again(machine):
    """QEMU stopped (SIGSTOP: libvirt still says it runs): docker commands fail within 30 s
    with a message naming the machine, not hang; once QEMU runs again, they work."""
    qemu = qemu_pid(machine.domain)
    os.kill(qemu, signal.SIGSTOP)
    try:
        for attempt in range(2):
            started = time.time()
            result = machine.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=120)
            took = time.time() - started
            assert result.returncode != 0, result.stdout
            assert took < 30, (attempt, took, result.stderr)
            assert "machine default does not answer" in result.stderr, (attempt, result.stderr)
    finally:
        os.kill(qemu, signal.SIGCONT)
    deadline = time.time() + 60
    while machine.docker("version", check=False, timeout=60).returncode != 0:
        assert time.time() < deadline, "docker did not work again within 60 s of QEMU running again"
        time.sleep(1)
    assert_engine_and_data(machine)


def test_a_full_data_disk_is_named_and_stops_nothing(tmp_path, cache_dir, built):
    """A 1 GiB data disk filled from a container: `status` and `ls` name it with the fixes,
    within seconds of the container's end (the agent measures the disk when containers end, not
    only every 30 s); stop, a boot (`up`, which names it too) and rm still work. (1 GiB, the
    smallest disk `up` makes: each GiB of zeros written takes about 15 s under TCG.)"""
    m = Up(tmp_path / "home", cache_dir, tmp_path / "work")
    m.work.mkdir()
    m.env["DOCKER_HOST"] = f"unix://{m.socket}"
    try:
        m.machine("up", "--no-context", "--no-mounts", "--disk", "1G")
        m.docker("import", str(busybox_image_tar(m.work / "busybox")), "busybox:latest")
        fill = m.docker("run", "--rm", "-v", "fill:/fill", "busybox", "sh", "-c", "dd if=/dev/zero of=/fill/zeros bs=1M; sync",
                        check=False, timeout=900)
        assert "No space left on device" in fill.stderr, fill.stderr
        deadline = time.time() + 10
        while "% full" not in (status := m.machine("status")).stderr.decode():
            assert time.time() < deadline, "status did not warn of the full disk within 10 s of the container's end"
            time.sleep(1)
        assert status.stdout.decode().strip() == "running"
        warning = status.stderr.decode()
        assert re.search(r"the data disk of default is (9\d|100)% full", warning), warning
        assert "`docker system prune`" in warning and "`machine set --disk 8G`" in warning, warning
        assert "% full" in m.machine("ls").stderr.decode()
        m.machine("stop")
        # `up` boots it and says so before the agent measured.
        assert "% full" in m.machine("up", "--no-context", "--no-mounts").stderr.decode()
        assert m.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        m.machine("stop")
        m.machine("rm", "default")
        assert not m.folder.exists()
    finally:
        m.machine("rm", "--force", "default", check=False, timeout=180)


def libvirtd_pid():
    out = subprocess.run(["ps", "-C", "libvirtd", "-o", "pid=,stat="], capture_output=True, text=True).stdout.split("\n")
    return next((int(line.split()[0]) for line in out if line.strip() and not line.split()[1].startswith("Z")), None)


def test_libvirtd_restarted_under_a_running_machine(tmp_path, cache_dir, built):
    """libvirtd killed and started again while a machine runs a container with a published
    port and a bind mount of a shared folder: the engine, the port and the mount keep working;
    a machine command made meanwhile names libvirt; after, they all work again."""
    m = Up(tmp_path / "home", cache_dir, tmp_path / "work")
    m.work.mkdir()
    m.env["DOCKER_HOST"] = f"unix://{m.socket}"
    site = m.work / "site"
    site.mkdir()
    (site / "index.html").write_text("before\n")
    try:
        m.machine("up", "--no-context", "--mount", str(m.work))
        m.docker("import", str(busybox_image_tar(m.work / "busybox")), "busybox:latest")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        m.docker("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "-v", f"{site}:/www", "busybox", "httpd", "-f", "-h", "/www")

        def page():
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()

        deadline = time.time() + 60
        while True:
            try:
                assert page() == "before\n"
                break
            except OSError:
                assert time.time() < deadline, "the published port never answered"
                time.sleep(1)
        os.kill(libvirtd_pid(), signal.SIGKILL)
        try:
            down = m.machine("status", check=False, timeout=60)
            assert down.returncode != 0 and "libvirt" in down.stderr.decode(), down.stderr
            # Nothing on the way of the engine, its ports or its shares goes through libvirtd.
            assert "web" in m.docker("ps", "--format", "{{.Names}}").stdout
            (site / "index.html").write_text("during\n")
            assert page() == "during\n"
        finally:
            subprocess.run(["scripts/host-setup.sh"], cwd=machine_binary().parents[2], check=True, timeout=600,
                           env=dict(os.environ, MACHINE_BIN=str(machine_binary())), capture_output=True)
        deadline = time.time() + 10
        while m.machine("status", check=False).stdout.decode().strip() != "running":
            assert time.time() < deadline, "machine status did not say running within 10 s of libvirtd's restart"
            time.sleep(0.5)
        (site / "index.html").write_text("after\n")
        assert page() == "after\n"
        assert m.agent_pid() and "exiting" not in (m.folder / "agent.log").read_text()
        m.machine("stop")
        m.machine("start")
        assert "web" in m.docker("ps", "-a", "--format", "{{.Names}}").stdout
    finally:
        m.machine("rm", "--force", "default", check=False, timeout=180)


def test_a_host_that_went_down_hard_gets_its_autostart_machines_back(machine):
    """The host went down hard: QEMU and the agent killed, libvirtd killed and started again.
    What the autostart unit runs brings the marked machine back with its named volume; a machine
    that is not marked stays stopped. The unit passes systemd-analyze verify."""
    said = machine.machine("autostart", "on").stdout.decode()
    unit = Path(re.search(r"^wrote (\S+)$", said, re.M).group(1))
    try:
        assert unit.parent == Path("/etc/systemd/system"), said
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        if not os.path.exists("/run/systemd/system"):
            assert "no systemd runs on this host" in said and "autostart --start" in said, said
        assert "marked for autostart: default" in machine.machine("autostart").stdout.decode()
        machine.machine("create", "idle", "--no-mounts")
        agent = machine.agent_pid()
        os.kill(qemu_pid(machine.domain), signal.SIGKILL)
        os.kill(agent, signal.SIGKILL)
        os.kill(libvirtd_pid(), signal.SIGKILL)
        subprocess.run(["scripts/host-setup.sh"], cwd=machine_binary().parents[2], check=True, timeout=600,
                       env=dict(os.environ, MACHINE_BIN=str(machine_binary())), capture_output=True)
        wait_for_exit(agent, 30)
        assert machine.machine("status", check=False).stdout.decode().startswith("stopped")
        # What the unit runs, as systemd runs it: its ExecStart, with its Environment only.
        text = unit.read_text()
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
        env.update(dict(shlex.split(line.removeprefix("Environment="))[0].split("=", 1)
                        for line in text.splitlines() if line.startswith("Environment=")))
        command = shlex.split(next(line for line in text.splitlines() if line.startswith("ExecStart=")).removeprefix("ExecStart="))
        started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "default started" in started.stdout and "idle" not in started.stdout, started.stdout
        assert_engine_and_data(machine)
        assert machine.machine("status", "idle", check=False).stdout.decode().startswith("stopped")
        # The last marked machine unmarked: the unit has nothing left to start, and goes.
        off = machine.machine("autostart", "off").stdout.decode()
        assert not unit.exists() and f"removed {unit}" in off, off
    finally:
        machine.machine("autostart", "off", check=False)
        machine.machine("rm", "--force", "idle", check=False, timeout=180)
        unit.unlink(missing_ok=True)
