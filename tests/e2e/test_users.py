"""Several users on one host, each with a machine called default, all up at once: root on
libvirt's system daemon and two ordinary accounts on their own session daemons. Each one's
`machine` sees only its own machine, and each docker reaches only its own engine."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from accounts import Account
from conftest import Up, machine_binary
from qemu_guest import busybox_image_tar

SMALL = "--no-mounts --cpus 1 --memory 768M"


@pytest.fixture
def everyone(tmp_path, cache_dir, built):
    root = Up(tmp_path / "root-home", cache_dir, tmp_path)
    root.env["DOCKER_HOST"] = f"unix://{root.socket}"
    accounts = []
    shared = Path("/tmp") / "machine-users-shared"
    try:
        for name in ("machine-dev1", "machine-dev2"):
            account = Account(name).create()
            account.give_cache(cache_dir)
            accounts.append(account)
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(mode=0o755)
        tar = busybox_image_tar(shared / "busybox")
        subprocess.run(["chmod", "-R", "a+rX", str(shared)], check=True)
        yield root, accounts, tar
    finally:
        root.machine("rm", "--force", "default", check=False, timeout=180)
        for account in accounts:
            account.remove()
        shutil.rmtree(shared, ignore_errors=True)


def test_root_and_two_accounts_each_run_their_own_default_at_once(everyone):
    root, accounts, tar = everyone
    root.machine("create", *SMALL.split())
    for account in accounts:
        account(f"{account.machine} create {SMALL}")
    # All three boot together, as they would on a shared build box.
    starting = [subprocess.Popen([str(machine_binary()), "start"], env=root.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)]
    starting += [account.background(f"{account.machine} start") for account in accounts]
    for process in starting:
        output = process.communicate(timeout=900)[0]
        assert process.returncode == 0, output

    def docker(who, command):
        if who is root:
            return root.docker(*command.split()).stdout
        return who(f'eval "$({who.machine} env)" && docker {command}').stdout

    def machine(who, command):
        if who is root:
            return root.machine(*command.split()).stdout.decode()
        return who(f"{who.machine} {command}").stdout

    everybody = [root, *accounts]
    names = ["root", *[account.name for account in accounts]]
    for who, name in zip(everybody, names):
        docker(who, f"import {tar} only-{name}:latest")
    ports, folders = set(), set()
    for who, name in zip(everybody, names):
        # Its own engine: the one image imported there and no other.
        images = docker(who, "images --format {{.Repository}}").split()
        assert images == [f"only-{name}"], (name, images)
        listing = [line.split()[:2] for line in machine(who, "ls").splitlines()[1:]]
        assert listing == [["default", "running"]], (name, listing)
        info = json.loads(machine(who, "inspect"))
        ports.add(info["ssh"]["port"])
        folders.add(info["folder"])
    assert len(ports) == 3 and len(folders) == 3
    # Removing one account's machine leaves the others running.
    first = accounts[0]
    first(f"{first.machine} rm --force default")
    assert first.processes("qemu-system") == []
    assert root.machine("status").stdout.decode().strip() == "running"
    second = accounts[1]
    assert second(f"{second.machine} status").stdout.strip() == "running"
    assert docker(second, "images --format {{.Repository}}").split() == [f"only-{second.name}"]
