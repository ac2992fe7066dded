"""The README's path for a developer's own account, from scratch: root installs machine once
(scripts/install.sh, which puts the guest image and engine beside the binary for every
account), then a fresh ordinary account, with its default login environment and an empty home,
runs `machine up` (building nothing), uses docker with a bind mount under
its home and a published port, and removes the machine, leaving nothing running."""
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from accounts import Account
from qemu_guest import busybox_image_tar, free_port

USER = "machine-dev"


@pytest.fixture
def developer(tmp_path):
    account = Account(USER).create()
    # The busybox image's tar, where the account can read it (pytest's folders are root's own).
    shared = Path("/tmp") / f"{USER}-shared"
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir(mode=0o755)
    account.tar = busybox_image_tar(shared / "busybox")
    account.udp_echo = shared / "udp_echo"
    subprocess.run(["gcc-12", "-static", "-O2", "-o", str(account.udp_echo), str(Path(__file__).parent / "udp_echo.c")], check=True)
    subprocess.run(["chmod", "-R", "a+rX", str(shared)], check=True)
    yield account
    account.remove()
    shutil.rmtree(shared, ignore_errors=True)


def test_a_fresh_account_goes_from_up_to_rm_with_its_default_login_environment(developer):
    assert "/usr/sbin" not in developer("echo $PATH").stdout.split(":")
    for shell, path in [("bash", "share/bash-completion/completions/machine"), ("zsh", "share/zsh/site-functions/_machine"),
                        ("fish", "share/fish/vendor_completions.d/machine.fish")]:
        assert "host-check" in (developer.prefix / path).read_text(), shell
    up = developer(f"{developer.machine} up")
    assert "default is up" in up.stdout, up.stdout + up.stderr
    # Its first `up` built nothing: it boots the image and engine install.sh put beside the
    # binary for every account (no apt download, no recipe's progress line).
    assert "==> " not in up.stderr, up.stderr
    assert not (developer.home / ".machine" / "cache" / "images").exists()
    builds = json.loads(developer(f"{developer.machine} inspect").stdout)["builds"]
    prebuilt = developer.prefix / "lib" / "machine" / "prebuilt"
    assert builds["image"]["folder"].startswith(f"{prebuilt}/images/") and builds["engine"]["folder"].startswith(f"{prebuilt}/engine/"), builds
    developer(f"docker import {developer.tar} busybox:latest")
    developer("mkdir -p ~/proj && echo from-the-host > ~/proj/in")
    out = developer("docker run --rm -v ~/proj:/src busybox sh -c 'cat /src/in; echo from-a-container > /src/out'").stdout
    assert out == "from-the-host\n"
    written = developer.home / "proj" / "out"
    assert written.read_text() == "from-a-container\n"
    assert written.stat().st_uid == pwd.getpwnam(USER).pw_uid
    port = free_port()
    developer(f"docker run -d -p {port}:80 busybox sh -c 'mkdir /w && echo hi > /w/index.html && exec httpd -f -p 80 -h /w'")
    deadline = time.time() + 20
    while True:
        try:
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read() == b"hi\n"
            break
        except OSError:
            assert time.time() < deadline, "the published port never answered"
            time.sleep(0.2)
    # Root installs machine again while the account's machine runs (README: "safely under
    # running machines"): the agent keeps its binary and its forwards, commands use the new one.
    agent = developer.processes("machine agent")
    developer.install()
    assert developer.processes("machine agent") == agent
    # It runs the file it started from, which the install renamed a new one over.
    assert os.readlink(f"/proc/{agent[0]}/exe") == f"{developer.machine} (deleted)"
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read() == b"hi\n"
    assert developer(f"{developer.machine} status").stdout.strip() == "running"
    # The host by name from a container of an ordinary user's machine (here the host's end of
    # that same published port), and a published UDP port through the session daemon's QEMU.
    assert developer(f"docker run --rm busybox wget -qO- http://host.docker.internal:{port}/").stdout == "hi\n"
    udp = free_port(socket.SOCK_DGRAM)
    developer(f"cp {developer.udp_echo} ~/proj/udp_echo && docker run -d -p {udp}:7/udp -v ~/proj:/x busybox /x/udp_echo 7")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(1)
        deadline = time.time() + 30
        while True:
            client.sendto(b"ping", ("127.0.0.1", udp))
            try:
                assert client.recv(100) == b"ping"
                break
            except TimeoutError:
                assert time.time() < deadline, "the published UDP port never answered"
    developer(f"{developer.machine} rm --force default")
    assert not (developer.home / ".machine" / "machines" / "default").exists()
    assert developer.processes("qemu-system") == [] and developer.processes("machine agent") == []
