#!/usr/bin/env python3
"""Time to a working `docker version`, wall clock, medians over rounds, in one run:
  - first `machine up` of a new machine (image and engine cached), against `machine start`
    of an existing stopped one: goal <= 1.2x, since the engine now comes on a disk of its
    own and nothing is uploaded or unpacked;
  - `machine resume` of a suspended machine, against `machine start`: goal <= 0.25x, with a
    container started before the suspend still answering on its published port.

    bench/first_up_and_resume.py [--rounds N]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from qemu_guest import busybox_image_tar, free_port, release_machine  # noqa: E402

MACHINE = release_machine()
DOCKER = "/usr/local/bin/docker"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="upbench-", dir="/tmp"))
    env = dict(os.environ, MACHINE_HOME=str(work / "home"))
    env.pop("DOCKER_CONTEXT", None)

    def run(*a):
        return subprocess.run([MACHINE, *a], env=env, check=True, capture_output=True, text=True)

    def docker(name, *a, check=True):
        socket_path = work / "home" / "machines" / name / "docker.sock"
        return subprocess.run([DOCKER, "-H", f"unix://{socket_path}", *a], capture_output=True, text=True, check=check)

    def timed(name, *command):
        """Seconds from the command's start to the first `docker version` that works after it."""
        started = time.monotonic()
        run(*command)
        while docker(name, "version", "--format", "{{.Server.Os}}", check=False).returncode != 0:
            time.sleep(0.05)
        return time.monotonic() - started

    first_up, start, resume = [], [], []
    try:
        run("image", "build", "--quiet")
        for i in range(args.rounds):
            name = f"first{i}"
            first_up.append(timed(name, "up", name, "--no-context", "--no-mounts"))
            run("rm", "--force", name)
        run("up", "bench", "--no-context", "--no-mounts")
        docker("bench", "import", str(busybox_image_tar(work / "busybox")), "busybox:latest")
        port = free_port()
        docker("bench", "run", "-d", "--restart=always", "-p", f"{port}:80", "busybox", "sh", "-c",
               "mkdir -p /w && echo hi > /w/index.html && exec httpd -f -p 80 -h /w")
        for _ in range(args.rounds):
            run("stop", "bench")
            start.append(timed("bench", "start", "bench"))
        for _ in range(args.rounds):
            run("suspend", "bench")
            resume.append(timed("bench", "resume", "bench"))
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read() == b"hi\n"
        m_up, m_start, m_resume = (statistics.median(x) for x in (first_up, start, resume))
        print(f"first up (cached image) : {m_up:6.1f} s  {first_up}")
        print(f"start of a stopped one  : {m_start:6.1f} s  {start}")
        print(f"resume of a suspended   : {m_resume:6.1f} s  {resume}")
        print(f"first up / start        : {m_up / m_start:.2f}x   (goal <= 1.2x)")
        print(f"resume / start          : {m_resume / m_start:.2f}x   (goal <= 0.25x)")
    finally:
        for name in ["bench", *[f"first{i}" for i in range(args.rounds)]]:
            subprocess.run([MACHINE, "rm", "--force", name], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
