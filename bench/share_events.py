#!/usr/bin/env python3
"""Host edits heard by a watcher in a container: for each of N edits made on the host to a
file in a shared folder (an in-place write: the events IN_MODIFY and IN_CLOSE_WRITE), the time
until a container watching the bind-mounted folder with inotify reports it, and how many
events were lost or came twice. The watcher's lines reach the host over `docker run -i`'s
attached stdout, so each figure also holds that way back; an inotify watcher on the host, fed
by the same edits, is shown as the floor. Goal: p99 <= 1 s, none lost, none duplicated.

    bench/share_events.py [--edits N] [--mount-type auto|virtiofs|9p]
"""
import argparse
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from qemu_guest import release_machine  # noqa: E402

MACHINE = release_machine()
DOCKER = "/usr/local/bin/docker"
NAME = "eventsbench"
MODIFY, CLOSE_WRITE = 0x2, 0x8
# What reading or opening a file raises: not changes, and never raised for host edits in the
# guest (machine raises only changes), so neither side counts them.
NOT_CHANGES = 0x1 | 0x10 | 0x20  # IN_ACCESS, IN_CLOSE_NOWRITE, IN_OPEN


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def reader(stream, lines):
    """Every line of a watcher's output, with when it arrived."""
    for line in stream:
        lines.put((time.perf_counter(), line.decode(errors="replace").strip()))


def watcher_image(work, env):
    root = work / "watcher"
    (root / "bin").mkdir(parents=True)
    subprocess.run(["gcc-12", "-static", "-O2", "-o", str(root / "bin" / "watch"), str(REPO / "tests" / "e2e" / "inotify_watch.c")],
                   check=True)
    subprocess.run(["tar", "-C", str(root), "-cf", str(work / "watcher.tar"), "."], check=True)
    subprocess.run([DOCKER, "import", str(work / "watcher.tar"), "watcher:bench"], env=env, check=True, capture_output=True)
    return root / "bin" / "watch"


def start(command, env=None):
    process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines = queue.Queue()
    threading.Thread(target=reader, args=(process.stdout, lines), daemon=True).start()
    when, first = lines.get(timeout=120)
    assert first == "watching", first
    return process, lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--mount-type", default="auto")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ebench-", dir="/tmp"))
    share = work / "share"
    share.mkdir()
    env = dict(os.environ, MACHINE_HOME=str(work / "home"), DOCKER_CONFIG=str(work / "docker"))
    env["DOCKER_HOST"] = f"unix://{work / 'home' / 'machines' / NAME / 'docker.sock'}"
    processes = []
    try:
        subprocess.run([MACHINE, "up", NAME, "--no-context", "--mount", str(share), "--mount-type", args.mount_type],
                       env=env, check=True, capture_output=True)
        watch = watcher_image(work, env)
        guest, guest_lines = start([DOCKER, "run", "--rm", "-i", "-v", f"{share}:/w", "watcher:bench", "/bin/watch", "/w"], env)
        host, host_lines = start([str(watch), str(share)])
        processes += [guest, host]
        names = [f"f{i}.txt" for i in range(10)]
        for name in names:
            (share / name).write_text("")
        time.sleep(2)
        for lines in (guest_lines, host_lines):  # the set-up's own events
            while not lines.empty():
                lines.get()
        latency = {"container": [], "host": []}
        lost = {"container": 0, "host": 0}
        extra = {"container": 0, "host": 0}
        unexpected = {"container": [], "host": []}
        for i in range(args.edits):
            name = names[i % len(names)]
            t0 = time.perf_counter()
            fd = os.open(share / name, os.O_WRONLY | os.O_APPEND)
            os.write(fd, b"x\n")
            os.close(fd)
            for side, lines in (("container", guest_lines), ("host", host_lines)):
                seen = set()
                deadline = t0 + 2
                first = None
                while seen != {MODIFY, CLOSE_WRITE}:
                    try:
                        when, line = lines.get(timeout=max(0.0, deadline - time.perf_counter()))
                    except queue.Empty:
                        break
                    # "MASK WD NAME"; an event on the watched folder itself has no name.
                    mask, _, event_name = (line.split(" ", 2) + ["", ""])[:3]
                    mask = int(mask, 16)
                    if mask & NOT_CHANGES:
                        continue
                    if event_name != name or mask in seen or mask not in (MODIFY, CLOSE_WRITE):
                        extra[side] += 1
                        unexpected[side].append(f"{mask:#x} {event_name or '(the folder)'}")
                        continue
                    seen.add(mask)
                    first = first if first is not None else when
                if first is None:
                    lost[side] += 1
                else:
                    latency[side].append(first - t0)
                lost[side] += 0 if seen == {MODIFY, CLOSE_WRITE} or first is None else 1
            time.sleep(0.01)
        time.sleep(1)
        for side, lines in (("container", guest_lines), ("host", host_lines)):
            while not lines.empty():
                _, line = lines.get()
                extra[side] += 0 if int(line.split(" ", 1)[0], 16) & NOT_CHANGES else 1
        print(f"\n{args.edits} in-place writes on the host to {len(names)} files of a share ({args.mount_type}); "
              f"first of IN_MODIFY/IN_CLOSE_WRITE heard\n")
        print("| watcher | p50 | p99 | max | lost | duplicated or unexpected |")
        print("| --- | --- | --- | --- | --- | --- |")
        for side, label in (("container", "in a container (machine)"), ("host", "on the host (floor)")):
            values = latency[side]
            print(f"| {label} | {statistics.median(values) * 1000:.1f} ms | {percentile(values, 99) * 1000:.1f} ms | "
                  f"{max(values) * 1000:.1f} ms | {lost[side]} | {extra[side]} |")
        print("\ngoal: p99 <= 1000 ms, none lost, none duplicated")
        for side, events in unexpected.items():
            if events:
                print(f"unexpected ({side}), first of {len(events)}: {', '.join(events[:5])}")
    finally:
        for process in processes:
            process.kill()
        subprocess.run([MACHINE, "rm", "--force", NAME], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
