#!/usr/bin/env python3
"""The Debian package (scripts/package.sh), wall clock to a working `docker version`, medians
over rounds, in one run:
  - a fresh account's first `machine up` with the package installed, through its default login
    (`su -`): nothing to build, the guest image and engine come in the package;
  - against root's `machine start` of an existing stopped machine, with the same package.
Goal: <= 1.3x (about 5x when each account built its own guest). Also prints the size of the
package as a release builds it (xz -9; goal <= 90 MB) and what is in it.

    bench/package_first_up.py [--rounds N]

Needs root. Installs the package with apt, makes accounts bench-deb-N, and purges and removes
both at the end; the host must have no `machine` package installed before.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKER = "/usr/local/bin/docker"
MACHINE = "/usr/bin/machine"


def sh(*command, **kw):
    return subprocess.run(command, check=True, capture_output=True, text=True, **kw)


def drop_account(name):
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    for _ in range(150):
        if subprocess.run(["pgrep", "-u", name], capture_output=True).returncode != 0:
            break
        time.sleep(0.2)
    subprocess.run(["userdel", "-r", name], capture_output=True)


def first_up(name):
    """Seconds from a fresh account's `machine up` to its first `docker version` that works."""
    drop_account(name)
    sh("useradd", "-m", "-s", "/bin/bash", name)
    try:
        started = time.monotonic()
        sh("su", "-", name, "-c", "machine up >/dev/null && docker version --format '{{.Server.Os}}'")
        return time.monotonic() - started
    finally:
        subprocess.run(["su", "-", name, "-c", "machine rm --force"], capture_output=True)
        drop_account(name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/package_first_up.py needs root (it installs a package and makes accounts)")
    if subprocess.run(["dpkg-query", "-W", "machine"], capture_output=True).returncode == 0:
        sys.exit("a machine package is installed already: purge it first (dpkg --purge machine)")

    with tempfile.TemporaryDirectory(prefix="machine-bench-deb-") as work:
        built = sh(str(REPO / "scripts" / "package.sh"), cwd=REPO, env=dict(os.environ, OUT=work))
        deb = Path(built.stdout.strip().splitlines()[-1])
        size = deb.stat().st_size
        contents = sh("dpkg-deb", "-c", str(deb)).stdout.splitlines()
        largest = sorted(((int(line.split()[2]), line.split()[5]) for line in contents), reverse=True)[:5]
        sh("apt-get", "install", "-y", "-q", "--no-install-recommends", str(deb), env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        home = Path(work) / "home"
        env = dict(os.environ, MACHINE_HOME=str(home))
        env.pop("DOCKER_CONTEXT", None)
        socket_path = home / "machines" / "bench" / "docker.sock"
        fresh, start = [], []
        try:
            sh(MACHINE, "up", "bench", "--no-context", "--no-mounts", env=env)
            sh(MACHINE, "stop", "bench", env=env)
            for i in range(args.rounds):
                fresh.append(first_up(f"bench-deb-{i}"))
                started = time.monotonic()
                sh(MACHINE, "start", "bench", env=env)
                while subprocess.run([DOCKER, "-H", f"unix://{socket_path}", "version", "--format", "{{.Server.Os}}"],
                                     capture_output=True).returncode != 0:
                    time.sleep(0.05)
                start.append(time.monotonic() - started)
                sh(MACHINE, "stop", "bench", env=env)
        finally:
            subprocess.run([MACHINE, "rm", "--force", "bench"], env=env, capture_output=True)
            subprocess.run(["dpkg", "--purge", "machine"], capture_output=True)

    print(f"package: {deb.name}")
    print(f"  size: {size / 1e6:.1f} MB ({size / 2**20:.1f} MiB; goal <= 90 MB)")
    print("  largest files: " + ", ".join(f"{path.removeprefix('./')} {n / 1e6:.1f} MB" for n, path in largest))
    print(f"rounds: {args.rounds} (medians, seconds to a working `docker version`)")
    f, s = statistics.median(fresh), statistics.median(start)
    print(f"  a fresh account's first `machine up`: {f:.2f} s   ({', '.join(f'{x:.1f}' for x in fresh)})")
    print(f"  root's `machine start` of a stopped machine: {s:.2f} s   ({', '.join(f'{x:.1f}' for x in start)})")
    print(f"  ratio first up / start: {f / s:.2f}x (goal <= 1.3x)")


if __name__ == "__main__":
    main()
