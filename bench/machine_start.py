#!/usr/bin/env python3
"""`machine start` of an existing machine, until its console shows sshd ready, next to a
bare `qemu-system-x86_64` boot of the same image until its console says sshd is ready, in
the same run (wall-clock seconds, medians; the first boot of each, which formats the disk
and makes the host key, is not counted). Goal: ratio <= 1.1x, i.e. libvirt and the manager
add almost nothing. The machine shares no folder (--no-mounts), as the bare boot has none:
what is measured is libvirt and machine, not a share's device.

    bench/machine_start.py [--rounds N]
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from qemu_guest import Guest, kill_guests_under, release_machine  # noqa: E402

MACHINE = release_machine()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mbench-", dir="/tmp"))
    env = dict(os.environ, MACHINE_HOME=str(work / "home"))
    run = lambda *a: subprocess.run([MACHINE, *a], env=env, check=True, capture_output=True, text=True)
    try:
        out = run("image", "build", "--quiet").stdout
        image = Path(out.splitlines()[0].split(":", 1)[1].split(" (")[0].strip())
        run("create", "bench", "--no-mounts")
        run("start", "bench")
        run("stop", "bench")
        guest = Guest(image, work / "bare")
        guest.boot()
        guest.poweroff()
        ours, bare = [], []
        # Guest uptime at sshd ready: what the guest itself took, so the wall-clock gap
        # splits into the host's start-up (libvirt, machine) and the guest's boot.
        ours_uptime, bare_uptime = [], []
        console = work / "home" / "machines" / "bench" / "console.log"
        for _ in range(args.rounds):
            # `machine start` goes on to the engine and the agent; the clock stops when the
            # console shows sshd ready, as for the bare boot. The last boot's console goes
            # first, or its "sshd ready" would stop the clock at once.
            console.unlink(missing_ok=True)
            t = time.monotonic()
            start = subprocess.Popen([MACHINE, "start", "bench"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while "machine: sshd ready" not in (console.read_text(errors="replace") if console.exists() else ""):
                time.sleep(0.02)
            ours.append(time.monotonic() - t)
            ours_uptime.append(float(re.search(r"\[([0-9.]+)\] machine: sshd ready", console.read_text(errors="replace")).group(1)))
            assert start.wait(timeout=300) == 0
            run("stop", "bench")
            t = time.monotonic()
            guest.start()
            bare_uptime.append(guest.wait_for("sshd ready"))
            bare.append(time.monotonic() - t)
            guest.pin_host_key()
            guest.poweroff()
        med = statistics.median
        print(f"\nmachine start vs bare QEMU boot ({args.rounds} rounds, medians, wall clock, TCG)")
        print(f"{'bare qemu-system-x86_64 until sshd ready':<44} {med(bare):6.2f} s")
        print(f"{'machine start (libvirt) until sshd ready':<44} {med(ours):6.2f} s   {med(ours) / med(bare):.2f}x   goal <= 1.10x")
        print(f"guest uptime at sshd ready: bare {med(bare_uptime):.2f} s, machine {med(ours_uptime):.2f} s; "
              f"host side before the guest runs: bare {med(bare) - med(bare_uptime):.2f} s, machine {med(ours) - med(ours_uptime):.2f} s")
        print(f"samples: bare {[round(x, 2) for x in bare]}, machine {[round(x, 2) for x in ours]}")
    finally:
        subprocess.run([MACHINE, "rm", "--force", "bench"], env=env, capture_output=True)
        kill_guests_under(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
