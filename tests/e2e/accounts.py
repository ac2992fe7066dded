"""Ordinary accounts for end-to-end tests: made fresh, with machine installed for them by
scripts/install.sh (as root would install it), each command run through `su -` so it meets the
account's default login environment, and removed afterwards with everything it ran."""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, SUITE, machine_binary


def delete_account(name):
    """userdel refuses an account that still has processes, and a run killed mid-test (a
    session's end, CI's timeout) leaves its session libvirtd, QEMU and agent behind: kill them,
    wait until they are gone, then delete the account and its home, and check it is gone."""
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and subprocess.run(["pgrep", "-u", name], capture_output=True).returncode == 0:
        time.sleep(0.2)
    deleted = subprocess.run(["userdel", "-r", name], capture_output=True, text=True)
    exists = subprocess.run(["id", name], capture_output=True).returncode == 0
    assert not exists, f"could not remove the test account {name}: {deleted.stderr}"


class Account:
    def __init__(self, name):
        self.name = name
        self.prefix = Path("/opt") / f"{name}-prefix"
        self.home = Path("/home") / name
        self.machine = self.prefix / "bin" / "machine"

    def create(self, install=True):
        """install=False: the test installs machine itself (the Debian package)."""
        if os.geteuid() != 0:
            pytest.skip("making a test user needs root")
        self.remove()
        subprocess.run(["useradd", "-m", "-d", str(self.home), "-s", "/bin/bash", self.name], check=True)
        if install:
            self.install()
        return self

    def install(self):
        """scripts/install.sh into the account's prefix, as root installs for every user."""
        install = subprocess.run(["scripts/install.sh"], cwd=REPO, capture_output=True, text=True,
                                 env=dict(os.environ, PREFIX=str(self.prefix), MACHINE_BINARY=str(machine_binary())))
        assert install.returncode == 0, install.stdout + install.stderr

    def __call__(self, command, check=True, timeout=900):
        # `su -`: a login shell, so PATH is the account's default one (no /usr/sbin on Debian).
        result = subprocess.run(["su", "-", self.name, "-c", command], capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, f"{self.name}: {command}: {result.stdout}{result.stderr}"
        return result

    def background(self, command):
        return subprocess.Popen(["su", "-", self.name, "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def processes(self, pattern):
        return subprocess.run(["pgrep", "-u", self.name, "-f", pattern], capture_output=True, text=True).stdout.split()

    def give_cache(self, cache_dir):
        """A copy of the built image and engine bundle, so the account does not build its own."""
        cache = self.home / ".machine" / "cache"
        for kind in ("images", "engine"):
            latest = (cache_dir / kind / f"latest-{SUITE}").resolve()
            (cache / kind).mkdir(parents=True)
            shutil.copytree(latest, cache / kind / latest.name)
            (cache / kind / f"latest-{SUITE}").symlink_to(latest.name)
        subprocess.run(["chown", "-R", f"{self.name}:{self.name}", str(self.home / ".machine")], check=True)

    def remove(self):
        if self.machine.exists() and self.home.exists():
            self(f"{self.machine} rm --force default", check=False, timeout=180)
        delete_account(self.name)
        shutil.rmtree(self.prefix, ignore_errors=True)
