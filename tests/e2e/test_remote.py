"""A machine on a remote libvirt host (qemu+ssh-style URIs), simulated on this host: an sshd of
the test's own on a loopback port, with its own host key and a key made for the test, is the
"remote" host; its libvirtd is this host's system daemon. Nothing of the MACHINE_HOME may reach
the domain: its files are volumes uploaded through libvirt, and the engine socket and published
ports come back through that sshd. One machine serves the module; the tests run in file order."""
import hashlib
import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import DOCKER, Up
from qemu_guest import busybox_image_tar, free_port

VIRSH = ["virsh", "-q", "-c", "qemu:///system"]


class RemoteHost:
    """An sshd on 127.0.0.1:port that lets in root with a key made for it."""

    def __init__(self, folder):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host_key = folder / "host_key"
        self.client_key = folder / "client_key"
        for key in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        self.known_hosts = folder / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {Path(str(self.host_key) + '.pub').read_text()}")
        config = folder / "sshd_config"
        config.write_text(f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {self.host_key}\n"
                          f"AuthorizedKeysFile {self.client_key}.pub\nPermitRootLogin prohibit-password\n"
                          "StrictModes no\nUsePAM no\nPidFile none\n")
        Path("/run/sshd").mkdir(exist_ok=True)
        self.sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=open(folder / "sshd.log", "w"))
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "the test's sshd did not start: " + (folder / "sshd.log").read_text()
                time.sleep(0.1)

    def uri(self, known_hosts=None):
        # libssh2: the transport of libvirt's that honours known_hosts= (its OpenSSH one takes
        # ~/.ssh/known_hosts whatever the URI says).
        return (f"qemu+libssh2://root@127.0.0.1:{self.port}/system?keyfile={self.client_key}"
                f"&known_hosts={known_hosts or self.known_hosts}&sshauth=privkey")

    def stop(self):
        self.sshd.terminate()
        self.sshd.wait(timeout=10)


@pytest.fixture(scope="module")
def remote_host(tmp_path_factory):
    if subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0":
        pytest.skip("the simulated remote host runs an sshd for root")
    host = RemoteHost(tmp_path_factory.mktemp("remote-host"))
    yield host
    host.stop()


@pytest.fixture(scope="module")
def remote(tmp_path_factory, cache_dir, built, remote_host):
    machine = Up(tmp_path_factory.mktemp("remote-home"), cache_dir, tmp_path_factory.mktemp("remote-work"))
    machine.env["DOCKER_HOST"] = f"unix://{machine.socket}"
    try:
        machine.up_output = machine.machine("up", "--connect", remote_host.uri(), "--no-context").stderr.decode()
        yield machine
    finally:
        machine.machine("rm", "--force", "default", check=False, timeout=180)


def domain_xml(machine):
    domain = json.loads(machine.machine("inspect").stdout)["domain"]
    return domain, subprocess.run(VIRSH + ["dumpxml", domain], capture_output=True, text=True, check=True).stdout


def pool_volumes():
    listed = subprocess.run(VIRSH + ["vol-list", "machine"], capture_output=True, text=True)
    return [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]


def test_up_on_a_remote_host_serves_containers_ports_and_volumes_from_files_it_uploaded(remote, remote_host):
    # Its domain names volumes on the libvirt host and nothing of the MACHINE_HOME.
    domain, xml = domain_xml(remote)
    # (Its metadata names the home as its owner; that is who it is, not a file QEMU opens.)
    opened = re.sub(r"<metadata>.*</metadata>", "", xml, flags=re.S)
    assert str(remote.home) not in opened and "/tmp/" not in opened
    assert "<kernel>/var/lib/libvirt/machine/image-" in opened
    assert f"/var/lib/libvirt/machine/{domain}-data.qcow2" in xml
    # The kernel it boots there is the cached image's own, uploaded intact (once per build: an
    # earlier run on this host may have uploaded it, so the bytes are compared, not the output).
    kernel = re.search(r"<kernel>([^<]+)</kernel>", xml).group(1)
    image = json.loads(remote.machine("inspect").stdout)["builds"]["image"]["folder"]
    assert hashlib.sha256(Path(kernel).read_bytes()).digest() == hashlib.sha256((Path(image) / "vmlinux").read_bytes()).digest()
    # Its config remembers the host, so no later command needs --connect; ls names the host.
    assert remote.config()["connect"] == remote_host.uri()
    assert remote.config()["mounts"] == []
    listed = remote.machine("ls").stdout.decode()
    assert f"root@127.0.0.1:{remote_host.port}" in listed.splitlines()[1]
    # What its data disk holds there, as libvirt reports it, is what du sees on that host.
    held = json.loads(remote.machine("inspect").stdout)["dataDiskOnHost"]["allocatedBytes"]
    assert abs(held - os.stat(f"/var/lib/libvirt/machine/{domain}-data.qcow2").st_blocks * 512) < 16 << 20, held
    assert re.search(r"\b20 GiB \(\d+\.\d GiB\)", listed.splitlines()[1]), listed

    # OpenSSH reaches it with what ssh-config prints: the jump through the libvirt host included.
    config = remote.work / "ssh_config"
    config.write_bytes(remote.machine("ssh-config").stdout)
    reached = subprocess.run(["ssh", "-F", str(config), "machine-default", "hostname"], capture_output=True, text=True, timeout=60)
    assert reached.stdout.strip() == "default", reached.stderr

    tar = busybox_image_tar(remote.work / "busybox")
    remote.docker("import", str(tar), "busybox:latest")
    assert remote.docker("run", "--rm", "busybox", "echo", "hello from afar").stdout == "hello from afar\n"
    remote.docker("run", "--rm", "-v", "kept:/data", "busybox", "sh", "-c", "echo still-here > /data/file")

    port = free_port()
    remote.docker("run", "-d", "-p", f"{port}:80", "busybox", "sh", "-c",
                  "mkdir -p /www && echo remote-web > /www/index.html && exec httpd -f -p 80 -h /www")
    deadline = time.time() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                assert reply.read() == b"remote-web\n"
            break
        except OSError:
            assert time.time() < deadline, f"the published port {port} did not answer"
            time.sleep(0.2)

    remote.machine("restart")
    assert remote.docker("run", "--rm", "-v", "kept:/data", "busybox", "cat", "/data/file").stdout == "still-here\n"


def test_a_machine_here_and_one_on_the_remote_host_are_up_at_once(remote, remote_host):
    remote.machine("up", "here", "--no-mounts", "--no-context", "--connect", "qemu:///system")
    try:
        here = remote.home / "machines" / "here" / "docker.sock"
        for socket_path, name in ((remote.socket, "default"), (here, "here")):
            info = subprocess.run([DOCKER, "-H", f"unix://{socket_path}", "info", "--format", "{{.Name}}"],
                                  capture_output=True, text=True, timeout=60)
            assert info.stdout.strip() == name, info.stderr
        rows = {line.split()[0]: line.split() for line in remote.machine("ls").stdout.decode().splitlines()[1:]}
        assert rows["here"][1:3] == ["running", "local"]
        assert rows["default"][1:3] == ["running", f"root@127.0.0.1:{remote_host.port}"]
        # ls asks each machine's own daemon, whatever --connect names.
        rows = {line.split()[0]: line.split() for line in
                remote.machine("ls", "--connect", remote_host.uri()).stdout.decode().splitlines()[1:]}
        assert rows["here"][1:3] == ["running", "local"] and rows["default"][1] == "running"
        # Each command goes to its machine's own daemon without --connect.
        assert remote.machine("status", "here").stdout.decode().strip() == "running"
        assert remote.machine("status").stdout.decode().strip() == "running"
    finally:
        remote.machine("rm", "--force", "here", check=False, timeout=180)


def test_the_agent_comes_back_when_its_ssh_to_the_libvirt_host_dies(remote):
    port = remote.config()["sshPort"]
    jumps = subprocess.run(["pgrep", "-f", f"ssh .*-W 127.0.0.1:{port} --"], capture_output=True, text=True).stdout.split()
    assert jumps, "the agent reaches the guest through no ssh -W"
    subprocess.run(["kill", "-9", *jumps], check=True)
    deadline = time.time() + 30
    while remote.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=30).returncode != 0:
        assert time.time() < deadline, "the engine did not come back after the agent's ssh was killed"
        time.sleep(0.5)
    assert "reconnected to default" in (remote.folder / "agent.log").read_text()


def test_an_unreachable_libvirt_host_is_named_with_the_fix(remote):
    closed = free_port()
    result = remote.machine("up", "nowhere", "--connect", f"qemu+ssh://root@127.0.0.1:{closed}/system", check=False)
    assert result.returncode != 0
    message = result.stderr.decode()
    assert f"cannot reach libvirt at qemu+ssh://root@127.0.0.1:{closed}/system" in message, message
    assert f"ssh -p {closed} root@127.0.0.1" in message
    assert not (remote.home / "machines" / "nowhere").exists()


def test_the_openssh_transport_the_readme_names_reaches_the_host(remote_host, tmp_path, cache_dir):
    """`--connect qemu+ssh://...`, as the README writes it: libvirt runs OpenSSH there (the other
    tests use its libssh2 transport). OpenSSH reads its own known_hosts, not the URI's: the URI's
    command= gives libvirt an ssh that pins the test host's key, so root's ~/.ssh is left alone."""
    ssh = tmp_path / "ssh"
    ssh.write_text(f'#!/bin/sh\nexec ssh -o UserKnownHostsFile={remote_host.known_hosts} -o StrictHostKeyChecking=yes "$@"\n')
    ssh.chmod(0o755)
    uri = (f"qemu+ssh://root@127.0.0.1:{remote_host.port}/system?keyfile={remote_host.client_key}"
           f"&known_hosts={remote_host.known_hosts}&command={ssh}")
    here = Up(tmp_path / "home", cache_dir, tmp_path / "work", name="viassh")
    try:
        here.machine("create", "viassh", "--connect", uri)
        assert here.config()["connect"] == uri
        row = here.machine("ls").stdout.decode().splitlines()[1]
        assert row.split()[:2] == ["viassh", "stopped"] and f"root@127.0.0.1:{remote_host.port}" in row, row
        here.machine("rm", "viassh")
        # A host key other than the one pinned is refused by that same transport.
        other = tmp_path / "other_known_hosts"
        other.write_text(f"[127.0.0.1]:{remote_host.port} {Path(str(remote_host.client_key) + '.pub').read_text()}")
        ssh.write_text(ssh.read_text().replace(str(remote_host.known_hosts), str(other)))
        refused = here.machine("create", "viassh", "--connect", uri, check=False)
        assert refused.returncode == 1 and b"cannot reach libvirt at qemu+ssh://" in refused.stderr, refused.stderr
    finally:
        here.machine("rm", "--force", "viassh", check=False)


def test_a_machine_whose_host_is_gone_is_removed_here_by_rm_force(remote_host, tmp_path, cache_dir):
    machine = Up(tmp_path / "home", cache_dir, tmp_path)
    machine.machine("create", "gone", "--connect", remote_host.uri())
    config_file = machine.home / "machines" / "gone" / "config.json"
    config = json.loads(config_file.read_text())
    closed = free_port()
    config["connect"] = f"qemu+ssh://root@127.0.0.1:{closed}/system"  # the host went away
    config_file.write_text(json.dumps(config))
    listed = machine.machine("ls").stdout.decode().splitlines()
    assert listed[1].split()[:3] == ["gone", "unreachable", f"root@127.0.0.1:{closed}"]
    refused = machine.machine("rm", "gone", check=False)
    assert refused.returncode == 1 and b"`machine rm --force gone` removes it from this host only" in refused.stderr
    removed = machine.machine("rm", "--force", "gone")
    assert b"removed gone from this host only" in removed.stderr and b"vol-delete --pool machine" in removed.stderr
    assert not (machine.home / "machines" / "gone").exists()


def test_a_port_taken_on_the_remote_host_is_replaced_by_another(remote):
    remote.machine("stop")
    taken = remote.config()["sshPort"]
    # Someone on the libvirt host (here: this host) listens on the machine's SSH port.
    with socket.socket() as squatter:
        # As servers do: the agent's last session to the port may still be in TIME_WAIT there.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        started = remote.machine("start")
    assert f"port {taken} is taken on 127.0.0.1" in started.stderr.decode()
    assert remote.config()["sshPort"] != taken
    assert remote.docker("run", "--rm", "busybox", "echo", "moved").stdout == "moved\n"
    assert remote.machine("ssh", "--", "echo", "in").stdout == b"in\n"


def test_a_share_is_refused_on_a_remote_host(remote, remote_host):
    result = remote.machine("create", "shares", "--connect", remote_host.uri(), "--mount", str(remote.work), check=False)
    assert result.returncode == 64
    assert b"does not share folders of this host" in result.stderr
    assert not (remote.home / "machines" / "shares").exists()


def test_a_host_key_other_than_the_known_one_is_refused(remote, remote_host, tmp_path):
    impostor = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{remote_host.port} {Path(str(impostor) + '.pub').read_text()}")
    result = remote.machine("up", "elsewhere", "--connect", remote_host.uri(known_hosts=wrong), check=False)
    assert result.returncode != 0
    message = result.stderr.decode()
    assert "cannot reach libvirt" in message and "HOST KEY VERIFICATION FAILED" in message, message
    assert f"ssh -p {remote_host.port} -i {remote_host.client_key} -o UserKnownHostsFile={wrong} root@127.0.0.1" in message
    assert not (remote.home / "machines" / "elsewhere").exists()


def test_rm_removes_the_machines_volumes_and_leaves_the_shared_builds(remote):
    domain, _ = domain_xml(remote)
    assert f"{domain}-data.qcow2" in pool_volumes()
    remote.machine("rm", "--force")
    left = pool_volumes()
    assert not [name for name in left if name.startswith(domain)], left
    assert any(name.endswith("-vmlinux") for name in left)
    assert subprocess.run(VIRSH + ["dominfo", domain], capture_output=True).returncode != 0
