import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from qemu_guest import Guest, debian_suites  # noqa: E402


# The Debian suite machines get when none is chosen: the first of the recipes' SUITES.
SUITE = debian_suites()[0]

# The Docker Engine version (its start) and API each suite's bundle has.
ENGINE = {"trixie": ("26.1", "1.45"), "bookworm": ("20.10", "1.41")}

# The host's docker CLI; scripts/host-setup.sh installs Debian's client there when it has none.
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def machine_binary():
    path = REPO / ".build" / "debug" / "machine"
    if not path.exists():
        subprocess.run(["swift", "build"], cwd=REPO, check=True)
    return path


def http_get(port, path="/", timeout=2):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as reply:
        return reply.read()


def wait_until_answers(port, path="/", limit=10):
    """The body of the first answer on the host's loopback port, and how long it took to come."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            return http_get(port, path), time.monotonic() - started
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing answered on 127.0.0.1:{port} within {limit} s")


@pytest.fixture(scope="session")
def cache_dir():
    # Shared with `machine` itself, so repeated runs on one host reuse the built image.
    return Path(os.environ.get("MACHINE_CACHE") or Path(os.environ.get("MACHINE_HOME", Path.home() / ".machine")) / "cache")


@pytest.fixture(scope="session")
def built(cache_dir):
    """Builds (or finds) the image and the engine bundle through `machine image build`."""
    env = dict(os.environ, MACHINE_CACHE=str(cache_dir))
    result = subprocess.run([str(machine_binary()), "image", "build"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    image = Path(lines["image"].split(" (")[0].strip())
    engine = Path(lines["engine"].split(" (")[0].strip()).parent
    return {"image": image, "engine": engine, "stdout": result.stdout, "stderr": result.stderr}


@pytest.fixture
def guests(tmp_path):
    """Makes guests in the test's folder; every one still running at the end is killed."""
    made = []

    def make(name="vm", **kwargs):
        guest = Guest(kwargs.pop("image"), tmp_path / name, **kwargs)
        made.append(guest)
        return guest

    yield make
    for guest in made:
        guest.kill()


def tail(path, lines=40):
    """The last lines of a file, or None if it cannot be read."""
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return None


def machine_logs(home, lines=30):
    """The last lines of the console and agent logs of every machine of a MACHINE_HOME, and of
    QEMU's log of its latest run: a failed machine command's message carries them, since
    teardown removes the machine (and its logs) before anyone could read them."""
    parts = []
    for log in sorted(Path(home).glob("machines/*/console.log")) + sorted(Path(home).glob("machines/*/agent.log")):
        text = tail(log, lines)
        if text is None:
            continue
        parts.append(f"\n--- {log.parent.name}: {log.name} (last lines) ---\n{text}")
    # A boot that printed nothing on its console left its story in QEMU's log (libvirt's).
    for folder in sorted(Path(home).glob("machines/*")):
        try:
            qemu = subprocess.run([str(machine_binary()), "logs", "--qemu", folder.name], capture_output=True, text=True,
                                  env=dict(os.environ, MACHINE_HOME=str(home)), timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if qemu.returncode == 0 and qemu.stdout.strip():
            parts.append(f"\n--- {folder.name}: QEMU's log (last lines) ---\n" + "\n".join(qemu.stdout.splitlines()[-lines:]))
    return "".join(parts)


class Up:
    """The machine `up` made, with helpers that run machine and docker against it."""

    made = []  # every one, so a failed test's report can carry their logs

    def __init__(self, home, cache_dir, work, name="default"):
        Up.made.append(self)
        self.home = home
        self.name = name
        self.work = work
        self.env = dict(os.environ, MACHINE_HOME=str(home), MACHINE_CACHE=str(cache_dir),
                        DOCKER_CONFIG=str(home / "docker-config"))
        self.env.pop("DOCKER_HOST", None)
        self.env.pop("DOCKER_CONTEXT", None)
        self.folder = home / "machines" / name
        self.socket = self.folder / "docker.sock"

    def machine(self, *args, check=True, timeout=600, input=None):
        result = subprocess.run([str(machine_binary()), *args], env=self.env, capture_output=True,
                                timeout=timeout, input=input)
        if check:
            assert result.returncode == 0, f"machine {' '.join(args)}: {result.stdout!r} {result.stderr!r}" + machine_logs(self.home)
        return result

    def docker(self, *args, check=True, timeout=300, input=None, text=True):
        result = subprocess.run([DOCKER, *args], env=self.env, capture_output=True, timeout=timeout,
                                input=input, text=text)
        if check:
            assert result.returncode == 0, f"docker {' '.join(args)}: {result.stdout!r} {result.stderr!r}"
        return result

    def agent_pid(self):
        return int((self.folder / "agent.pid").read_text())

    def config(self):
        return json.loads((self.folder / "config.json").read_text())


def watcher_image(machine):
    """An image whose /bin/watch prints the inotify events of the folders it is given."""
    if machine.docker("image", "inspect", "watcher:1", check=False).returncode == 0:
        return "watcher:1"
    root = machine.work / "watcher"
    (root / "bin").mkdir(parents=True)
    subprocess.run(["gcc-12", "-static", "-O2", "-o", str(root / "bin" / "watch"), str(REPO / "tests" / "e2e" / "inotify_watch.c")],
                   check=True)
    subprocess.run(["tar", "-C", str(root), "-cf", str(machine.work / "watcher.tar"), "."], check=True)
    machine.docker("import", str(machine.work / "watcher.tar"), "watcher:1")
    return "watcher:1"


def start_watcher(machine, folder):
    """A container printing the inotify events of the guest's `folder` (bind-mounted at /w),
    once it watches."""
    container = machine.docker("run", "-d", "-v", f"{folder}:/w", watcher_image(machine), "/bin/watch", "/w").stdout.strip()
    deadline = time.time() + 30
    while "watching" not in machine.docker("logs", container).stdout:
        assert time.time() < deadline, "the watcher did not start"
        time.sleep(0.2)
    return container


def watched_events(machine, container, count, timeout=30):
    """The watcher's events, once `count` came (or after `timeout` s): "MASK COOKIE NAME"."""
    deadline = time.time() + timeout
    while True:
        events = machine.docker("logs", container).stdout.splitlines()[1:]
        if len(events) >= count or time.time() > deadline:
            return events
        time.sleep(0.2)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report carries the logs of the machines touched while it ran (console,
    agent, the guest's engine), which its teardown may remove before anyone reads them."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    since = time.time() - max(call.duration, 0) - 60
    for machine in Up.made:
        logs = [machine.folder / "console.log", machine.folder / "agent.log"]
        if not any(log.exists() and log.stat().st_mtime >= since for log in logs):
            continue
        for log in logs:
            text = tail(log)
            if text is not None:
                report.sections.append((f"{machine.name}: {log.name} (last lines)", text))
        try:
            engine = machine.machine("ssh", machine.name, "--", "tail -n 40 /var/log/docker.log", check=False, timeout=30)
            report.sections.append((f"{machine.name}: /var/log/docker.log (last lines)",
                                    engine.stdout.decode(errors="replace") + engine.stderr.decode(errors="replace")))
        except subprocess.TimeoutExpired:
            report.sections.append((f"{machine.name}: /var/log/docker.log", "machine ssh did not answer in 30 s"))
