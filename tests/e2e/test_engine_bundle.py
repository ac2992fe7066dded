"""The engine bundle unpacks in the guest (a damaged upload is refused first), dockerd answers
/_ping through a forwarded socket, the host's docker CLI runs a container, and the engine comes
back by itself after a reboot. One guest for all of it: each boot costs about 20 s of CI."""
import os
import subprocess

from qemu_guest import busybox_image_tar, wait_for_ping
from conftest import ENGINE, SUITE


def docker(sock, *args, **kwargs):
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    return subprocess.run(["docker", *args], env=env, capture_output=True, timeout=300, **kwargs)


def test_a_damaged_upload_is_refused_then_the_engine_installs_answers_ping_and_runs_containers(built, guests, tmp_path):
    guest = guests(image=built["image"])
    guest.boot()
    # The bundle is uploaded once (66 MB through the emulated guest's sshd): the damaged upload is
    # the same file checked against another sha256.
    guest.upload([built["engine"] / "engine.tar.xz", built["engine"] / "install.sh"], "/var/lib/machine/")
    result = guest.ssh("sh /var/lib/machine/install.sh /var/lib/machine/engine.tar.xz " + "0" * 64, check=False)
    assert result.returncode == 1
    assert b"upload was damaged" in result.stderr
    assert guest.ssh("ls /var/lib/machine/engine 2>/dev/null | wc -l").stdout.decode().strip() == "0"

    assert "unpacked" in guest.install_engine(built["engine"], upload=False)
    # Installing the same bundle again changes nothing.
    assert "already installed" in guest.install_engine(built["engine"], upload=False)

    sock = tmp_path / "docker.sock"
    guest.forward_socket(sock)
    wait_for_ping(sock)
    version = docker(sock, "version", "--format", "{{.Server.Version}}")
    assert version.returncode == 0, version.stderr
    assert version.stdout.decode().startswith(ENGINE[SUITE][0])

    tar = busybox_image_tar(tmp_path / "busybox")
    with open(tar, "rb") as f:
        imported = docker(sock, "import", "-", "busybox:e2e", stdin=f)
    assert imported.returncode == 0, imported.stderr
    run = docker(sock, "run", "--rm", "busybox:e2e", "sh", "-c", "echo hello from the guest; exit 3")
    assert run.stdout.decode() == "hello from the guest\n", run.stderr
    assert run.returncode == 3

    # The engine lives on the data disk: after a reboot init starts it without provisioning.
    guest.poweroff()
    guest.start()
    guest.wait_for("sshd ready")
    guest.pin_host_key()
    guest.wait_for("engine ready", timeout=120)
    guest.forward_socket(sock)
    wait_for_ping(sock)
    images = docker(sock, "images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "busybox:e2e" in images.stdout.decode()

