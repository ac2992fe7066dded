"""Bad inputs give clear errors and leave the cache as it was."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*")) if Path(folder).exists() else []


def build(recipe_root, cache, **env):
    return subprocess.run(["bash", str(Path(recipe_root) / "iso" / "build.sh"), "--cache", str(cache)],
                          capture_output=True, text=True, env=dict(os.environ, **env), timeout=600)


def test_unreachable_mirror(tmp_path):
    cache = tmp_path / "cache"
    result = build(REPO, cache, MACHINE_APT_OPTIONS="-o Acquire::http::Proxy=http://127.0.0.1:9 -o Acquire::Retries=0")
    assert result.returncode != 0
    assert "could not download packages from the Debian mirror" in result.stderr
    assert "hint: check the network" in result.stderr
    assert listing(cache / "images") == [] and listing(cache / "tmp") == []


def test_package_that_does_not_exist(tmp_path, cache_dir):
    recipe = tmp_path / "recipe"
    shutil.copytree(REPO / "iso", recipe / "iso", symlinks=True)
    shutil.copytree(REPO / "scripts", recipe / "scripts", symlinks=True)
    with open(recipe / "iso" / "packages.txt", "a") as f:
        f.write("no-such-package-machine-test\n")
    before = listing(cache_dir / "images")
    result = build(recipe, cache_dir)
    assert result.returncode != 0
    assert "not found in the Debian package lists: no-such-package-machine-test" in result.stderr
    assert "hint:" in result.stderr
    assert listing(cache_dir / "images") == before


def test_disk_full_during_the_build(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up: {mounted.stderr.decode().strip()}")
    try:
        result = build(REPO, small / "cache")
        assert result.returncode != 0
        assert "full" in result.stderr or "No space left" in result.stderr, result.stderr
        assert "hint:" in result.stderr
        assert listing(small / "cache" / "images") == []
        assert listing(small / "cache" / "tmp") == []
    finally:
        subprocess.run(["umount", str(small)])
