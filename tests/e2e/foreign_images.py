"""Images of other platforms for the tests, made from Debian's busybox-static of that
architecture: `docker save` archives whose config names the platform, so `docker load`
records it (Engine 20.10 records `docker import --platform linux/arm64` as linux/amd64).

The .deb comes from the host's own Debian mirror through an apt root of the tests' own
(trixie, which has riscv64 as well as arm64 and armhf), kept in the cache between runs; the
host's apt sources, lists and dpkg state are read for the mirror's address only."""
import hashlib
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

SUITE = "trixie"
# platform: (Debian architecture, OCI architecture, variant)
PLATFORMS = {
    "linux/arm64": ("arm64", "arm64", "v8"),
    "linux/arm/v7": ("armhf", "arm", "v7"),
    "linux/riscv64": ("riscv64", "riscv64", None),
}
# The same busybox built for the host's own platform: the native peer of bench/emulation.py.
NATIVE = {"linux/amd64": ("amd64", "amd64", None)}
ALL = {**PLATFORMS, **NATIVE}
APPLETS = ["sh", "uname", "echo", "cat", "ls", "mkdir", "touch", "true", "false", "sleep", "env", "rm"]
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def mirror():
    """The host's Debian mirror, as its apt sources name it."""
    for source in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")) + [Path("/etc/apt/sources.list")]:
        try:
            text = source.read_text()
        except OSError:
            continue
        found = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.M) or re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s", text, re.M)
        if found:
            return found.group(1)
    return "http://deb.debian.org/debian"


def apt(root, *args):
    options = ["-o", f"Dir::State={root}", "-o", f"Dir::Cache={root}", "-o", f"Dir::Etc={root}/etc",
               "-o", f"Dir::State::status={root}/status", "-o", f"Dir::Etc::sourcelist={root}/sources.list",
               "-o", f"Dir::Etc::sourceparts={root}/etc", "-o", f"Dir::Etc::preferencesparts={root}/etc",
               "-o", "APT::Architecture=amd64", *[f"-oAPT::Architectures::={a}" for a, _, _ in ALL.values()],
               "-o", "APT::Sandbox::User=root", "-q"]
    result = subprocess.run(["apt-get", *options, *args], cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"apt-get {' '.join(args)}: {result.stdout[-2000:]} {result.stderr[-2000:]}"
    return result.stdout


def apt_root(cache):
    root = Path(cache) / "tests" / f"apt-{SUITE}-{'-'.join(a for a, _, _ in ALL.values())}"
    if not (root / "ready").exists():
        for folder in ["lists/partial", "archives/partial", "etc"]:
            (root / folder).mkdir(parents=True, exist_ok=True)
        (root / "status").touch()
        (root / "sources.list").write_text(f"deb [signed-by={KEYRING}] {mirror()} {SUITE} main\n")
        apt(root, "update")
        (root / "ready").touch()
    return root


def busybox(cache, platform):
    """Debian's static busybox of the platform's architecture."""
    arch = ALL[platform][0]
    root = apt_root(cache)
    binary = root / f"busybox-{arch}"
    if not binary.exists():
        for old in root.glob(f"busybox-static_*_{arch}.deb"):
            old.unlink()
        apt(root, "download", f"busybox-static:{arch}")
        deb = next(root.glob(f"busybox-static_*_{arch}.deb"))
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            member = next(m for m in archive.getmembers() if m.name in ("./bin/busybox", "./usr/bin/busybox"))
            binary.write_bytes(archive.extractfile(member).read())
    return binary


def image_archive(cache, platform, tag, folder):
    """A `docker save` archive of one image: busybox and links of its applets in /bin, with
    the platform in its config. Returns its path."""
    _, architecture, variant = ALL[platform]
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        entry = tarfile.TarInfo("bin")
        entry.type, entry.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(entry)
        data = busybox(cache, platform).read_bytes()
        entry = tarfile.TarInfo("bin/busybox")
        entry.size, entry.mode = len(data), 0o755
        tar.addfile(entry, io.BytesIO(data))
        for applet in APPLETS:
            entry = tarfile.TarInfo(f"bin/{applet}")
            entry.type, entry.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(entry)
        for name in ["tmp", "etc"]:
            entry = tarfile.TarInfo(name)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(entry)
    layer_bytes = layer.getvalue()
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    config = {"architecture": architecture, "os": "linux", "created": "2026-01-01T00:00:00Z",
              "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
              "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"busybox-static of {platform} (tests/e2e/foreign_images.py)"}]}
    if variant:
        config["variant"] = variant
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [f"{diff_id}/layer.tar"]}]
    path = Path(folder) / (tag.replace("/", "_").replace(":", "_") + ".tar")
    with tarfile.open(path, "w") as out:
        for name, content in [(config_name, config_bytes), (f"{diff_id}/layer.tar", layer_bytes),
                              ("manifest.json", json.dumps(manifest).encode())]:
            entry = tarfile.TarInfo(name)
            entry.size = len(content)
            out.addfile(entry, io.BytesIO(content))
    return path
