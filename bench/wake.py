#!/usr/bin/env python3
"""A sleeping machine's wake against `machine start` and `machine resume`, in one run, medians
over rounds: each is the wall clock from the command (or, for the wake, from nothing at all)
to the first `docker version` that works, and after each a container started before it still
answers on its published port. QEMU's resident memory is read awake (idle, 20 s after a
workload that read 300 MiB of files) and asleep, for the same boot.

The machine is made with --no-mounts, so that `suspend` can save it, and --idle-sleep 3s.
Goal (issue 34): wake <= 0.25x `machine start`.

    bench/wake.py [--rounds N]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import json
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from qemu_guest import busybox_image_tar, free_port, release_machine  # noqa: E402

MACHINE = release_machine()
DOCKER = "/usr/local/bin/docker"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wakebench-", dir="/tmp"))
    env = dict(os.environ, MACHINE_HOME=str(work / "home"))
    env.pop("DOCKER_CONTEXT", None)
    socket_path = work / "home" / "machines" / "bench" / "docker.sock"

    def run(*a):
        return subprocess.run([MACHINE, *a], env=env, check=True, capture_output=True, text=True)

    def docker(*a, check=True):
        return subprocess.run([DOCKER, "-H", f"unix://{socket_path}", *a], capture_output=True, text=True, check=check)

    def first_docker_version(started):
        while docker("version", "--format", "{{.Server.Os}}", check=False).returncode != 0:
            time.sleep(0.05)
        return time.monotonic() - started

    def timed(*command):
        started = time.monotonic()
        run(*command)
        return first_docker_version(started)

    def wait_asleep():
        deadline = time.monotonic() + 120
        while run("status", "bench").stdout.strip() != "sleeping":
            if time.monotonic() > deadline:
                raise SystemExit("the machine did not fall asleep within 120 s")
            time.sleep(0.2)

    def resident_mib():
        domain = json.loads(run("inspect", "bench").stdout)["domain"]
        pid = subprocess.run(["pgrep", "-f", f"guest={domain},"], capture_output=True, text=True).stdout.split()[0]
        return int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1)) // 1024

    wake, start, resume, awake_mib, asleep_mib = [], [], [], [], []
    try:
        run("up", "bench", "--no-context", "--no-mounts", "--idle-sleep", "3s")
        docker("import", str(busybox_image_tar(work / "busybox")), "busybox:latest")
        port = free_port()
        docker("run", "-d", "--restart=always", "-p", f"{port}:80", "busybox", "sh", "-c",
               "mkdir -p /w && echo hi > /w/index.html && exec httpd -f -p 80 -h /w")

        def answers():
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read() == b"hi\n"

        deadline = time.monotonic() + 30
        while True:  # the agent opens the port once the engine says the container started
            try:
                answers()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for _ in range(args.rounds):
            # Awake and idle after reading files, then asleep, in the same boot.
            run("set", "bench", "--idle-sleep", "off")
            # A file kept on the data disk, as an image's layers are: its pages stay cached.
            run("ssh", "bench", "--", "dd if=/dev/urandom of=/var/lib/docker/f bs=1M count=300 2>/dev/null; cat /var/lib/docker/f > /dev/null")
            time.sleep(20)
            awake_mib.append(resident_mib())
            run("set", "bench", "--idle-sleep", "3s")
            wait_asleep()
            asleep_mib.append(resident_mib())
            wake.append(first_docker_version(time.monotonic()))
            answers()
            run("ssh", "bench", "--", "rm /var/lib/docker/f")
        for _ in range(args.rounds):
            run("stop", "bench")
            start.append(timed("start", "bench"))
            answers()
        for _ in range(args.rounds):
            run("suspend", "bench")
            resume.append(timed("resume", "bench"))
            answers()
        m_wake, m_start, m_resume = (statistics.median(x) for x in (wake, start, resume))
        print(f"wake of a sleeping one  : {m_wake:6.2f} s  {[round(x, 2) for x in wake]}")
        print(f"start of a stopped one  : {m_start:6.2f} s  {[round(x, 2) for x in start]}")
        print(f"resume of a suspended   : {m_resume:6.2f} s  {[round(x, 2) for x in resume]}")
        print(f"wake / start            : {m_wake / m_start:.2f}x   (goal <= 0.25x)")
        print(f"wake / resume           : {m_wake / m_resume:.2f}x")
        print(f"QEMU resident, awake idle after reading 300 MiB: {statistics.median(awake_mib)} MiB {awake_mib}")
        print(f"QEMU resident, asleep                          : {statistics.median(asleep_mib)} MiB {asleep_mib}")
    finally:
        subprocess.run([MACHINE, "rm", "--force", "bench"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
