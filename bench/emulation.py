#!/usr/bin/env python3
"""What running a program of another platform costs here: the same busybox (Debian trixie's
busybox-static, one build per architecture) run natively as linux/amd64 and through the
machine's emulators as linux/arm64, linux/arm/v7 and linux/riscv64, in one machine, in one run.

Two workloads, timed inside the container from /proc/uptime (so docker's own round trips do not
count), medians over rounds:
  compute  `dd if=/dev/zero bs=1M count=32 | sha256sum`: translated code running
  exec     20 runs of /bin/true from a shell loop: each start of an emulated program starts
           an emulator too
Prints each platform's times and its ratio to native. Under TCG (no usable KVM) the native
container is itself emulated by QEMU's system emulator, so the ratios are smaller than a host
with KVM would show; the accelerator is printed with the table.

    bench/emulation.py [--rounds N]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from foreign_images import ALL, image_archive  # noqa: E402
from qemu_guest import release_machine  # noqa: E402

MACHINE = release_machine()
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
WORKLOADS = {
    "compute": "dd if=/dev/zero bs=1M count=32 2>/dev/null | sha256sum >/dev/null",
    "exec": "i=0; while [ $i -lt 20 ]; do /bin/true; i=$((i+1)); done",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="emulationbench-", dir="/tmp"))
    env = dict(os.environ, MACHINE_HOME=str(work / "home"))
    env.pop("DOCKER_CONTEXT", None)
    cache = os.environ.get("MACHINE_CACHE") or str(Path.home() / ".machine" / "cache")
    sock = work / "home" / "machines" / "bench" / "docker.sock"

    def machine(*a):
        return subprocess.run([MACHINE, *a], env=env, check=True, capture_output=True, text=True)

    def docker(*a):
        return subprocess.run([DOCKER, "-H", f"unix://{sock}", *a], check=True, capture_output=True, text=True).stdout

    try:
        said = machine("up", "bench", "--no-mounts", "--idle-sleep", "off")
        found = re.search(r"\((kvm|tcg), ", said.stdout + said.stderr)
        accel = found.group(1) if found else "?"
        containers = {}
        for platform in ALL:
            tag = "bench/busybox:" + platform.split("/", 1)[1].replace("/", "-")
            docker("load", "-i", str(image_archive(cache, platform, tag, work)))
            containers[platform] = docker("run", "-d", "--platform", platform, tag, "sleep", "100000").strip()
        times = {platform: {name: [] for name in WORKLOADS} for platform in ALL}
        for _ in range(args.rounds):
            for platform, container in containers.items():
                for name, script in WORKLOADS.items():
                    out = docker("exec", container, "sh", "-c",
                                 f"read a _ </proc/uptime; {script}; read b _ </proc/uptime; echo $a $b")
                    start, end = map(float, out.split())
                    times[platform][name].append(end - start)
        med = statistics.median
        native = times["linux/amd64"]
        print(f"\nemulation benchmark ({args.rounds} rounds, medians; guest under {accel}, busybox 1.37 of Debian trixie)")
        print(f"{'platform':<16}" + "".join(f"{name + ' (s)':<14}{'x native':<10}" for name in WORKLOADS))
        for platform in ALL:
            row = f"{platform:<16}"
            for name in WORKLOADS:
                value = med(times[platform][name])
                row += f"{value:<14.2f}{value / med(native[name]):<10.1f}"
            print(row)
        print("samples: " + json.dumps(times))
    finally:
        subprocess.run([MACHINE, "rm", "--force", "bench"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
