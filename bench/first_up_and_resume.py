#!/usr/bin/env python3
"""Time to a working `docker version`, wall clock, medians over rounds, in one run:
  - first `machine up` of a new machine (image and engine cached), against `machine start`
    of an existing stopped one: goal <= 1.2x, since the engine now comes on a disk of its
    own and nothing is uploaded or unpacked;
  - `machine resume` of a suspended machine, against `machine start`: goal <= 0.25x, with a
    container started before the suspend still answering on its published port.

Each Debian suite (--suites, all by default) is measured in turn, and the first is compared
with the last (trixie/bookworm: what the newer engine costs).

    bench/first_up_and_resume.py [--rounds N] [--suites trixie,bookworm]
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
from qemu_guest import busybox_image_tar, debian_suites, free_port, print_suites_table, release_machine  # noqa: E402

MACHINE = release_machine()
DOCKER = "/usr/local/bin/docker"


def measure(suite, rounds, work):
    """Samples of first up, start and resume (seconds) of machines of one Debian suite."""
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
    names = ["bench", *[f"first{i}" for i in range(rounds)]]
    try:
        run("image", "build", "--quiet", "--suite", suite)
        for i in range(rounds):
            name = f"first{i}"
            first_up.append(timed(name, "up", name, "--suite", suite, "--no-context", "--no-mounts"))
            run("rm", "--force", name)
        run("up", "bench", "--suite", suite, "--no-context", "--no-mounts")
        docker("bench", "import", str(busybox_image_tar(work / "busybox")), "busybox:latest")
        port = free_port()
        docker("bench", "run", "-d", "--restart=always", "-p", f"{port}:80", "busybox", "sh", "-c",
               "mkdir -p /w && echo hi > /w/index.html && exec httpd -f -p 80 -h /w")
        for _ in range(rounds):
            run("stop", "bench")
            start.append(timed("bench", "start", "bench"))
        for _ in range(rounds):
            run("suspend", "bench")
            resume.append(timed("bench", "resume", "bench"))
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read() == b"hi\n"
    finally:
        for name in names:
            subprocess.run([MACHINE, "rm", "--force", name], env=env, capture_output=True)
    return {"first up": first_up, "start": start, "resume": resume}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--suites", default=",".join(debian_suites(newest_first=True)),
                        help="Debian suites to measure, the new one first (default: %(default)s)")
    args = parser.parse_args()
    suites = args.suites.split(",")
    work = Path(tempfile.mkdtemp(prefix="upbench-", dir="/tmp"))
    try:
        samples = {suite: measure(suite, args.rounds, work / suite) for suite in suites}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {suite: {k: statistics.median(v) for k, v in s.items()} for suite, s in samples.items()}
    rows = [("first up (cached image)", lambda m: m["first up"], "s", ""),
            ("start of a stopped one", lambda m: m["start"], "s", ""),
            ("resume of a suspended", lambda m: m["resume"], "s", ""),
            ("first up / start", lambda m: m["first up"] / m["start"], "x", "<= 1.2x"),
            ("resume / start", lambda m: m["resume"] / m["start"], "x", "<= 0.25x")]
    print_suites_table(suites, [(name, {s: (f"{value(med[s]):.2f} {unit}", value(med[s])) for s in suites}, goal)
                                for name, value, unit, goal in rows], 12)
    for suite, s in samples.items():
        print(f"samples {suite}: " + ", ".join(f"{k} {[round(x, 1) for x in v]}" for k, v in s.items()))


if __name__ == "__main__":
    main()
