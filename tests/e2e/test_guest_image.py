"""The guest image boots under QEMU (TCG), is reached over SSH with the host key pinned from
the console, keeps its data disk across reboots and never formats a disk with data on it."""
import hashlib
import json
import os
import subprocess
from pathlib import Path

from conftest import machine_binary


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def test_manifest_describes_every_artefact_and_package(built):
    image = built["image"]
    manifest = json.loads((image / "manifest.json").read_text())
    for name, record in manifest["artefacts"].items():
        assert sha256(image / name) == record["sha256"], name
        assert (image / name).stat().st_size == record["size"], name
    names = {p["name"] for p in manifest["packages"]}
    assert {"busybox-static", "openssh-server", "iptables", "e2fsprogs", "linux-image-" + manifest["kernel"]} <= names
    assert all(p["version"] and len(p["sha256"]) == 64 for p in manifest["packages"])
    engine = json.loads((built["engine"] / "manifest.json").read_text())
    assert {"docker.io", "containerd", "runc", "tini"} <= {p["name"] for p in engine["packages"]}
    assert sha256(built["engine"] / "engine.tar.xz") == engine["artefacts"]["engine.tar.xz"]["sha256"]


def test_second_build_comes_from_the_cache(built, cache_dir):
    env = dict(os.environ, MACHINE_CACHE=str(cache_dir))
    again = subprocess.run([str(machine_binary()), "image", "build"], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert again.stdout == built["stdout"]
    assert "image is cached" in again.stderr and "engine bundle is cached" in again.stderr
    assert "downloading" not in again.stderr


def test_boot_pins_host_key_and_data_disk_survives_reboot_and_another_key_is_refused(built, guests, tmp_path):
    guest = guests(image=built["image"])
    guest.boot()
    first = guest.console_text()
    assert "machine: data disk /dev/vda is blank: formatting ext4" in first
    key = guest.host_key()
    # The fingerprint line agrees with OpenSSH's own computation of the printed key.
    printed = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=key, capture_output=True, text=True, check=True)
    assert printed.stdout.split()[1] == guest.fingerprint()
    # Strict checking against the pinned key: login works.
    assert guest.ssh("hostname").stdout.decode().strip() == "machine-test"
    guest.ssh("echo kept > /var/lib/machine/marker && mkdir -p /home/dev && echo mine > /home/dev/file")
    guest.poweroff()
    assert "machine: data disk released" in guest.console_text()

    guest.start()
    guest.wait_for("sshd ready")
    second = guest.console_text()
    assert "formatting" not in second
    assert "machine: data disk /dev/vda mounted" in second
    assert guest.host_key() == key, "the host key changed across a reboot"
    guest.pin_host_key()
    assert guest.ssh("cat /var/lib/machine/marker /home/dev/file").stdout.decode() == "kept\nmine\n"

    # Pinned to another key, the same guest is refused (the same guest: a boot is 20 s of CI).
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    guest.known_hosts.write_text(f"[127.0.0.1]:{guest.port} {Path(str(other) + '.pub').read_text().split(' ')[0]} "
                                 f"{Path(str(other) + '.pub').read_text().split(' ')[1]}\n")
    result = guest.ssh("true", check=False)
    assert result.returncode != 0
    assert b"REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr


def test_disk_with_another_filesystem_is_never_formatted(built, guests, tmp_path):
    # A data disk that carries files in a filesystem other than ext4 (ISO 9660 here).
    content = tmp_path / "precious"
    content.mkdir()
    (content / "thesis.txt").write_text("years of work\n" * 1000)
    disk = tmp_path / "foreign.img"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(disk), str(content)], check=True, stderr=subprocess.DEVNULL)
    with open(disk, "ab") as f:
        f.truncate(64 << 20)
    before = sha256(disk)
    guest = guests(image=built["image"], data_disk=disk)
    guest.boot()
    assert "carries data that is not an ext4 filesystem; it was left untouched" in guest.console_text()
    assert "formatting" not in guest.console_text()
    guest.poweroff()
    assert sha256(disk) == before


def test_iso_boots_from_cdrom(built, guests):
    guest = guests(image=built["image"], boot_iso=True)
    guest.boot(timeout=180)
    image_key = json.loads((built["image"] / "manifest.json").read_text())["key"]
    assert guest.ssh("cat /etc/machine-image").stdout.decode().strip() == image_key
