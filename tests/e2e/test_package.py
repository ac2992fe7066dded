"""The Debian package (scripts/package.sh), the way a Debian user meets it: README's command 1
(scripts/quickstart.sh: host set-up, the package built and installed with apt, `machine up`, a
container run through the host's docker CLI) on a host where machine was never installed, a binary that runs with
the Swift toolchain hidden, `man machine`, a fresh account whose first `up` builds nothing, a
newer package installed under its running machine, then `apt remove` (refused while the machine
runs, naming it) and `apt purge`, which leave no process or package file behind and the account's
machine folder as it was."""
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from accounts import Account
from conftest import DOCKER, REPO

USER = "machine-deb"
OTHER = "machine-deb2"
PACKAGE_FILES = ["/usr/bin/machine", "/usr/lib/machine", "/usr/share/machine", "/usr/share/man/man1/machine.1.gz",
                 "/usr/share/doc/machine", "/usr/share/bash-completion/completions/machine"]


def installed():
    status = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", "machine"], capture_output=True, text=True).stdout
    return "install ok installed" in status


def apt(*args):
    return subprocess.run(["apt-get", "-y", "-q", *args], capture_output=True, text=True,
                          env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def purge():
    """Leaves the host as a run killed mid-test would not: no account, no package."""
    for name in (USER, OTHER):
        Account(name).remove()
    if subprocess.run(["dpkg-query", "-W", "machine"], capture_output=True).returncode == 0:
        result = subprocess.run(["dpkg", "--purge", "machine"], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def package(tmp_path, cache_dir):
    """README's command 1, run as written: it installs the package it built and brings root's
    default machine up. Root's real home is left alone: the run gets a home of its own (its
    machine, the home folder it shares, its docker context), and a faster compression than the
    release's (xz -9, 100 s here), which changes only the package's size. Yields the package,
    installed, with that machine removed."""
    if os.geteuid() != 0:
        pytest.skip("installing a Debian package needs root")
    purge()
    # (Short: the machine's sockets live under its MACHINE_HOME.)
    home = Path(tempfile.mkdtemp(prefix="mq-", dir="/tmp"))
    env = dict(os.environ, HOME=str(home), MACHINE_HOME=str(home / ".machine"), TMPDIR=str(tmp_path), OUT=str(tmp_path),
               MACHINE_CACHE=str(cache_dir), MACHINE_DEB_COMPRESSION="gzip:1")
    env.pop("DOCKER_HOST", None)
    try:
        quickstart = subprocess.run(["scripts/quickstart.sh"], cwd=REPO, capture_output=True, text=True, env=env, timeout=1800)
        said = quickstart.stdout + quickstart.stderr
        assert quickstart.returncode == 0, said
        assert "default is up" in said and "hello from a container in the machine" in said, said
        assert re.search(r"^docker client \S+ -> engine \S+ \(linux/amd64\) in the machine$", quickstart.stdout, re.M), said
        deb = Path(re.search(r"^machine is installed for every user \((\S+)\)", quickstart.stdout, re.M).group(1))
        assert re.fullmatch(r"machine_\d+\.\d+\.\d+(\+git\d+\.[0-9a-f]+)?_amd64\.deb", deb.name), deb.name
        assert installed()
    finally:
        if Path("/usr/bin/machine").exists():
            subprocess.run(["/usr/bin/machine", "rm", "--force", "default"], env=env, capture_output=True, timeout=180)
        shutil.rmtree(home, ignore_errors=True)
    yield deb
    purge()


def newer_build(deb, folder):
    """The same package with a higher version, as the next release would be."""
    tree = folder / "newer"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    version = re.search(r"^Version: (.*)$", control.read_text(), re.M).group(1)
    control.write_text(control.read_text().replace(f"Version: {version}", f"Version: {version}.1"))
    newer = folder / f"machine_{version}.1_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "-b", str(tree), str(newer)], check=True, capture_output=True)
    return newer


def test_the_debian_package_installs_runs_without_the_toolchain_and_removes_cleanly(package, tmp_path):
    lint = subprocess.run(["lintian", "--tag-display-limit", "0", str(package)], capture_output=True, text=True)
    assert not [line for line in lint.stdout.splitlines() if line.startswith("E:")], lint.stdout
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # The quickstart installed it with apt.
    assert installed()
    # The binary needs no Swift toolchain: nothing it loads comes from one, and it runs with
    # the toolchain's folder hidden (a tmpfs over it, in a mount namespace of its own).
    libraries = subprocess.run(["ldd", "/usr/bin/machine"], capture_output=True, text=True, check=True).stdout
    assert "swift" not in libraries.lower(), libraries
    # Its packed relocations load with glibc 2.36 and later only: an older host's apt refuses
    # the package rather than install a machine that cannot start.
    versions = subprocess.run(["readelf", "-V", "/usr/bin/machine"], capture_output=True, text=True, check=True).stdout
    depends = subprocess.run(["dpkg-query", "-W", "-f", "${Depends}", "machine"], capture_output=True, text=True).stdout
    assert "GLIBC_ABI_DT_RELR" in versions and "libc6 (>= 2.36)" in depends, depends
    # The functions the agent runs lead the binary's code (Package.swift's ordering file): in the
    # release build the package was made of, 95% of them lie in the first half of .text (without
    # the list, in its first 84%), and nearly all of them are still in it (else
    # scripts/agent-order.py must write the list again).
    listed = [line for line in (REPO / "Sources/machine/agent.order").read_text().splitlines() if line and not line.startswith("#")]
    built = REPO / ".build/release/machine"
    text = re.search(r"\s\.text\s+PROGBITS\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)",
                     subprocess.run(["readelf", "-SW", str(built)], capture_output=True, text=True, check=True).stdout)
    start, size = int(text.group(1), 16), int(text.group(2), 16)
    symbols = subprocess.run(["nm", "--defined-only", str(built)], capture_output=True, text=True, check=True).stdout
    wanted = set(listed)
    offsets = sorted(int(f[0], 16) - start for f in map(str.split, symbols.splitlines()) if len(f) == 3 and f[1] in "tTwW" and f[2] in wanted)
    assert len(offsets) >= 0.9 * len(listed), f"{len(listed) - len(offsets)} of agent.order's {len(listed)} functions are gone: run scripts/agent-order.py"
    assert offsets[int(len(offsets) * 0.95)] < size / 2, f"the agent's functions are spread over .text: {offsets[int(len(offsets) * 0.95)] / size:.2f}"
    swift = subprocess.run(["sh", "-c", "command -v swift"], capture_output=True, text=True).stdout.strip()
    toolchain = Path(swift or "/opt/swift/usr/bin/swift").resolve().parents[2]
    hidden = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {toolchain} && ls {toolchain} | wc -l && /usr/bin/machine --version && /usr/bin/machine host-check --print-accelerator"],
                            capture_output=True, text=True)
    assert hidden.returncode == 0, hidden.stdout + hidden.stderr
    assert hidden.stdout.splitlines()[0] == "0" and re.fullmatch(r"\d+\.\d+\.\d+", hidden.stdout.splitlines()[1]), hidden.stdout
    manual = subprocess.run(["man", "machine"], capture_output=True, text=True, env=dict(os.environ, MANPAGER="cat", MANWIDTH="100"))
    assert manual.returncode == 0, manual.stderr
    for command in ("up", "stop", "ssh", "upgrade", "set"):
        assert re.search(rf"^\s+{command}\s", manual.stdout, re.M), f"man machine does not show `{command}`"

    # A fresh account, its default login environment, the package's machine: the first `up`
    # builds nothing (no apt download, no recipe's progress line), it boots the package's builds.
    # Two accounts at once share the package's read-only builds.
    account, other = Account(USER).create(install=False), Account(OTHER).create(install=False)
    try:
        ups = [a.background("machine up") for a in (account, other)]
        for a, up in zip((account, other), ups):
            out = up.communicate(timeout=900)[0]
            assert up.returncode == 0 and "default is up" in out, f"{a.name}: {out}"
            assert "==> " not in out, out
            assert not (a.home / ".machine" / "cache" / "images").exists()
            builds = json.loads(a("machine inspect").stdout)["builds"]
            assert builds["image"]["folder"].startswith("/usr/lib/machine/prebuilt/images/"), builds
            assert builds["engine"]["folder"].startswith("/usr/lib/machine/prebuilt/engine/"), builds
            assert a("docker version --format '{{.Server.Version}}'").stdout.strip()
    finally:
        other.machine = Path("/usr/bin/machine")
        other.remove()
    engine = account("docker version --format '{{.Server.Version}}'").stdout.strip()

    # Autostart for an ordinary user: a unit in their own systemd folder, started at their login
    # (no systemd runs on this kind of host, which it says), that systemd-analyze accepts.
    said = account("machine autostart on").stdout
    unit = Path(re.search(r"^wrote (\S+)$", said, re.M).group(1))
    assert unit.parent == account.home / ".config" / "systemd" / "user", said
    assert "ExecStart=\"/usr/bin/machine\" autostart --start" in unit.read_text() and "WantedBy=default.target" in unit.read_text()
    if not Path("/run/systemd/system").exists():
        assert "no systemd runs on this host" in said and "~/.profile" in said, said
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "marked for autostart: default" in account("machine autostart").stdout

    # The package's docker CLI: /usr/bin/docker on a host with none of its own there, left alone
    # on one with its own file. With the host's own CLI hidden (a tmpfs over its folder, in a
    # mount namespace of its own), the account's `docker` is the package's, of the engine's version.
    if Path("/usr/bin/docker").is_symlink() or not Path("/usr/bin/docker").exists():
        assert Path("/usr/bin/docker").resolve() == Path("/usr/lib/machine/docker/docker")
        hide = "" if Path(DOCKER).parent == Path("/usr/bin") else f"mount -t tmpfs none {Path(DOCKER).parent} && "
        cli = subprocess.run(["unshare", "-m", "sh", "-c", hide + f"su - {USER} -c 'command -v docker && docker version --format \"{{{{.Client.Version}}}} {{{{.Server.Version}}}}\"'"],
                             capture_output=True, text=True)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert cli.stdout.split() == ["/usr/bin/docker", engine, engine], cli.stdout
    else:
        assert not Path("/usr/bin/docker").is_symlink(), "the host's own /usr/bin/docker was replaced"

    # A newer package, installed under the running machine: the agent keeps the binary it started
    # from (dpkg renames the new one over it), and the engine keeps answering.
    agent = account.processes("machine agent")
    assert agent, "the machine has no agent"
    upgrade = apt("install", "--no-install-recommends", str(newer_build(package, tmp_path)))
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert account.processes("machine agent") == agent
    assert os.readlink(f"/proc/{agent[0]}/exe") == "/usr/bin/machine (deleted)"
    assert account("docker version --format '{{.Server.Version}}'").stdout.strip()
    assert account("machine status").stdout.strip() == "running"

    # `apt remove` while the machine runs: refused, naming it and the way to stop it.
    refused = apt("remove", "machine")
    assert refused.returncode != 0, refused.stdout
    said = refused.stdout + refused.stderr
    assert "not removed: these machines are running" in said and f"default (the agent of {USER}'s machine" in said, said
    assert "machine stop NAME" in said, said
    assert installed() and Path("/usr/bin/machine").exists()
    assert account("docker version --format '{{.Server.Version}}'").stdout.strip()

    # Stopped, it goes; the account's machine (its config and disk) stays, and nothing runs.
    account("machine stop")
    folder = account.home / ".machine" / "machines" / "default"
    config, disk = (folder / "config.json").read_bytes(), (folder / "data.qcow2").stat()
    removed = apt("remove", "machine")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not installed()
    assert not Path("/usr/bin/docker").is_symlink() or Path("/usr/bin/docker").resolve().exists(), "a dangling /usr/bin/docker"
    assert not account.processes("machine agent") and not account.processes("qemu-system")
    # It has no configuration files to keep: dpkg forgets it at the remove, or at the purge.
    purged = subprocess.run(["dpkg", "--purge", "machine"], capture_output=True, text=True)
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert subprocess.run(["dpkg-query", "-W", "machine"], capture_output=True).returncode != 0, "dpkg still knows the package"
    left = [path for path in PACKAGE_FILES if Path(path).exists()]
    assert not left, f"left behind by apt purge: {left}"
    assert (folder / "config.json").read_bytes() == config
    assert (folder / "data.qcow2").stat().st_mtime == disk.st_mtime and (folder / "data.qcow2").stat().st_size == disk.st_size
