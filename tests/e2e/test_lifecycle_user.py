"""The machine lifecycle as an ordinary user, the way most people run it: qemu:///session,
whose libvirt daemon libvirt spawns by itself for that user."""
import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from accounts import delete_account
from conftest import REPO, SUITE, machine_binary

USER = "machine-e2e"


@pytest.fixture
def user(tmp_path, built):
    if os.geteuid() != 0:
        pytest.skip("making a test user needs root")
    delete_account(USER)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", USER], check=True)
    home = Path(pwd.getpwnam(USER).pw_dir)
    # What the user may read: the binary, the recipes, and the image built by the session.
    share = Path("/tmp") / f"{USER}-share"
    shutil.rmtree(share, ignore_errors=True)
    share.mkdir(mode=0o755)
    shutil.copy(machine_binary(), share / "machine")
    for folder in ("iso", "provisioning", "scripts"):
        shutil.copytree(REPO / folder, share / folder, symlinks=True)
    images = home / ".machine" / "cache" / "images"
    images.mkdir(parents=True)
    shutil.copytree(built["image"], images / built["image"].name)
    (images / f"latest-{SUITE}").symlink_to(built["image"].name)
    subprocess.run(["chown", "-R", f"{USER}:{USER}", str(home / ".machine")], check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(share)], check=True)

    def run(*args, check=True, timeout=300):
        command = " ".join(["env", f"MACHINE_RECIPES={share}", str(share / "machine"), *args])
        result = subprocess.run(["su", "-", USER, "-c", command], capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, f"machine {' '.join(args)}: {result.stdout}{result.stderr}"
        return result

    run.home = home
    yield run
    run("rm", "--force", "life", check=False)
    delete_account(USER)
    shutil.rmtree(share, ignore_errors=True)


def test_lifecycle_as_an_ordinary_user_on_the_session_daemon(user):
    user("create", "life", "--disk", "4G")
    info = json.loads(user("inspect", "life").stdout)
    assert info["folder"].startswith(str(user.home))
    started = user("start", "life")
    assert "life is running" in started.stdout
    # The QEMU process belongs to the user, not to root or libvirt-qemu.
    owners = subprocess.run(["ps", "-o", "user=", "-C", "qemu-system-x86_64"], capture_output=True, text=True).stdout.split()
    assert USER in owners
    ssh = ["ssh", "-i", info["ssh"]["identityFile"], "-o", f"UserKnownHostsFile={info['ssh']['knownHostsFile']}",
           "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(info["ssh"]["port"]), "root@127.0.0.1"]
    login = subprocess.run(
        ["su", "-", USER, "-c", " ".join(ssh + ["'echo kept > /var/lib/machine/marker; hostname'"])],
        capture_output=True, text=True, timeout=60)
    assert login.returncode == 0, login.stderr
    assert login.stdout.strip() == "life"
    # Its agent found the QEMU by the session daemon's pid file and asks libvirt through
    # `machine agent-libvirt` processes: it never loads libvirt's libraries itself.
    agent = (user.home / ".machine" / "machines" / "life" / "agent.pid").read_text().strip()
    assert "libvirt" not in Path(f"/proc/{agent}/maps").read_text()
    # The user's home is shared over virtiofs: the session daemon cannot run virtiofsd, so
    # machine runs it as the user, in a user namespace where the user is root. What root in the
    # guest writes there belongs to the user on the host; the user's private files are open to
    # root in the guest; the machine's own folder inside it is hidden.
    private = user.home / "private.txt"
    subprocess.run(["su", "-", USER, "-c", f"echo mine > {private} && chmod 600 {private}"], check=True)
    shared = subprocess.run(
        ["su", "-", USER, "-c", " ".join(ssh + [f"'cat {private}; echo more >> {private}; echo new > {user.home}/from-guest; ls -A {user.home}/.machine'"])],
        capture_output=True, text=True, timeout=60)
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout == "mine\n"
    assert private.read_text() == "mine\nmore\n"
    assert (user.home / "from-guest").stat().st_uid == pwd.getpwnam(USER).pw_uid
    mounted = subprocess.run(["su", "-", USER, "-c", " ".join(ssh + [f"'grep \" {user.home} \" /proc/mounts'"])],
                             capture_output=True, text=True, timeout=60)
    assert " virtiofs " in mounted.stdout, mounted.stdout + mounted.stderr
    [share] = json.loads(user("inspect", "life").stdout)["shares"]
    assert share["type"] == "virtiofs" and share["hostPath"] == str(user.home)
    # One virtiofsd, forked into its sandbox: two processes, both the user's.
    assert len(virtiofsds()) == 2 and str(share["virtiofsdPid"]) in virtiofsds()
    # QEMU cannot save a guest with a share: refused before anything stops.
    refused = user("suspend", "life", check=False)
    assert refused.returncode == 1 and "shared folders" in refused.stderr and "machine stop life" in refused.stderr
    assert user("status", "life").stdout.strip() == "running"
    assert user("stop", "life").stdout.strip() == "life stopped"
    assert user("status", "life").stdout.strip() == "stopped"
    # virtiofsd ends with its QEMU, and the next start runs a new one.
    assert virtiofsds() == []
    assert json.loads(user("inspect", "life").stdout)["shares"][0].get("virtiofsdPid") is None
    user("start", "life")
    assert len(virtiofsds()) == 2
    again = subprocess.run(["su", "-", USER, "-c", " ".join(ssh + ["cat /var/lib/machine/marker"])],
                           capture_output=True, text=True, timeout=60)
    assert again.stdout == "kept\n", again.stderr
    user("rm", "--force", "life")
    assert not (user.home / ".machine" / "machines" / "life").exists()
    assert virtiofsds() == []


def virtiofsds():
    """The pids of the user's virtiofsd processes."""
    return subprocess.run(["pgrep", "-u", USER, "-x", "virtiofsd"], capture_output=True, text=True).stdout.split()
