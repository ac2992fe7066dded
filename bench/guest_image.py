#!/usr/bin/env python3
"""Benchmark of the guest image against the targets in the foundation issue, with a peer
measured in the same run: a bare boot of the same kernel with a busybox-only initramfs
whose /init logs its uptime and powers off (the floor for "time to userspace").

Prints a table: ISO and bundle sizes, guest uptime at "sshd ready", at the end of the boot
steps and at "engine ready" (the engine's API listening; median of N boots after the first,
with the engine's own disk attached as `machine` attaches it), and guest memory used with
the engine idle. Times are guest uptime (steady under host noise) and
medians; the ratio to the bare boot is what to compare between runs. The same boots are
made again with emulation of other platforms off (the seed's `platforms` is "none"): the
ratio is what registering the emulators costs on the way to "engine ready". Each Debian suite
(--suites, all by default) gets a column, boots taking turns, and the first is compared with
the last (trixie/bookworm: what the newer engine costs).

    bench/guest_image.py [--boots N] [--suites trixie,bookworm]
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
from qemu_guest import Guest, debian_suites, kill_guests_under, print_suites_table, wait_for_ping, release_machine  # noqa: E402


def build(suite):
    out = subprocess.run([release_machine(), "image", "build", "--quiet", "--suite", suite],
                         capture_output=True, text=True, check=True).stdout
    lines = dict(line.split(":", 1) for line in out.splitlines())
    image = Path(lines["image"].split(" (")[0].strip())
    engine = Path(lines["engine"].split(" (")[0].strip()).parent
    return image, engine


def bare_boot(image, work):
    """Uptime at which a busybox-only /init runs, same kernel, same QEMU options."""
    root = work / "bare"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    initramfs = image / "initramfs.img"
    # Take busybox out of our own initramfs so both boots run the same binary.
    if not (root / "bin" / "busybox").exists():
        subprocess.run(f"lz4 -dc '{initramfs}' | (cd '{root}' && cpio -id --quiet bin/busybox)", shell=True, check=True)
    (root / "init").write_text("#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n"
                               "read up _ </proc/uptime\necho \"[$up] machine: bare init\" >/dev/console\n"
                               "/bin/busybox poweroff -f\n")
    (root / "proc").mkdir(exist_ok=True)
    os.chmod(root / "init", 0o755)
    bare = work / "bare.img"
    subprocess.run(f"cd '{root}' && find . | cpio -o -H newc -R 0:0 --quiet | lz4 -l -9 -q > '{bare}'", shell=True, check=True)
    console = work / "bare-console.log"
    cmdline = (image / "cmdline").read_text().strip()
    subprocess.run(["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "2", "-m", "1024",
                    "-nodefaults", "-display", "none", "-serial", f"file:{console}", "-no-reboot",
                    "-kernel", str(image / "vmlinux"), "-initrd", str(bare), "-append", cmdline,
                    "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci"],
                   check=True, timeout=120)
    m = re.search(r"\[([0-9.]+)\] machine: bare init", console.read_text(errors="replace"))
    return float(m.group(1))


def boots(guests, count):
    """Boots each guest count + 1 times, taking turns so that the host's noise falls on all
    alike (the first boot of each formats its data disk and makes its host key, so only the
    later ones count). For each: uptimes at sshd ready, boot finished, engine starting and
    engine ready, and the boot steps and /proc/meminfo of its last boot."""
    results = {label: {"sshd": [], "finished": [], "starting": [], "ready": [], "steps": [], "meminfo": {}} for label in guests}
    for i in range(count + 1):
        for label, guest in guests.items():
            r = results[label]
            guest.start()
            guest.wait_for("sshd ready")
            guest.pin_host_key()
            ready_at = guest.wait_for("engine ready", timeout=180)
            if i > 0:
                r["sshd"].append(guest.wait_for("sshd ready"))
                r["finished"].append(guest.wait_for("boot finished"))
                r["starting"].append(float(re.search(r"\[([0-9.]+)\] machine: engine starting", guest.console_text()).group(1)))
                r["ready"].append(ready_at)
            if i == count:
                r["steps"] = guest.ssh("cat /run/machine/boot-steps").stdout.decode().split("\n")
                sock = guest.folder / "docker.sock"
                guest.forward_socket(sock)
                wait_for_ping(sock)
                time.sleep(5)  # let the engine settle to idle
                r["meminfo"] = dict(l.split(":") for l in guest.ssh("cat /proc/meminfo").stdout.decode().splitlines())
            guest.poweroff()
    return results


def measures(image, engine, r, r_off, bare):
    """The rows of one suite: (measure, value, number compared between suites, target)."""
    kb = lambda k: int(r["meminfo"][k].split()[0])
    # `free`'s "used": what is neither free nor reclaimable cache. The unpacked initramfs
    # (the root filesystem, in shmem) is shown beside it, and MemTotal-MemAvailable too,
    # which also counts the kernel's reserves.
    used_mb = (kb("MemTotal") - kb("MemFree") - kb("Buffers") - kb("Cached") - kb("SReclaimable")) / 1024
    shmem_mb = kb("Shmem") / 1024
    unavailable_mb = (kb("MemTotal") - kb("MemAvailable")) / 1024
    iso_mb = (image / "machine.iso").stat().st_size / 1e6
    bundle_mb = (engine / "engine.tar.xz").stat().st_size / 1e6
    # The budget is the engine disk's compressed size, as a download of it would be: xz at its
    # default level (the archive the build keeps is xz -1, for build time).
    packed_mb = len(subprocess.run(["xz", "-T0", "-6", "-c", str(engine / "engine.img")], capture_output=True, check=True).stdout) / 1e6
    disk_mb = (engine / "engine.img").stat().st_size / 1e6
    med = statistics.median
    sshd, finished, ready, ready_off = med(r["sshd"]), med(r["finished"]), med(r["ready"]), med(r_off["ready"])
    engine_own = med([a - b for a, b in zip(r["ready"], r["starting"])])
    return [
        ("ISO size", f"{iso_mb:.1f} MB", iso_mb, "<= 40 MB"),
        ("engine disk, compressed (xz -6)", f"{packed_mb:.1f} MB", packed_mb, "<= 60 MB"),
        ("engine archive sent to a running machine (xz -1)", f"{bundle_mb:.1f} MB", bundle_mb, ""),
        ("engine disk (uncompressed)", f"{disk_mb:.0f} MB", disk_mb, ""),
        ("sshd ready (guest uptime)", f"{sshd:.2f} s ({sshd / bare:.2f}x bare)", sshd, "<= 4 s"),
        ("boot steps finished", f"{finished:.2f} s ({finished / bare:.2f}x bare)", finished, ""),
        ("engine ready (API listening)", f"{ready:.2f} s ({ready / bare:.2f}x bare)", ready, "<= 2.5x bare"),
        ("  of which the engine's own start", f"{engine_own:.2f} s", engine_own, ""),
        ("engine ready, emulation off", f"{ready_off:.2f} s (on: {ready / ready_off:.2f}x)", ready_off, "on <= 1.0x off"),
        ("guest memory used, engine idle", f"{used_mb:.0f} MB (+{shmem_mb:.0f} rootfs)", used_mb, "<= 150 MB"),
        ("  MemTotal - MemAvailable", f"{unavailable_mb:.0f} MB", unavailable_mb, ""),
    ]



def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boots", type=int, default=5)
    parser.add_argument("--suites", default=",".join(debian_suites(newest_first=True)),
                        help="Debian suites to measure, the new one first (default: %(default)s); each column is "
                             "compared with the last")
    args = parser.parse_args()
    suites = args.suites.split(",")
    builds = {suite: build(suite) for suite in suites}
    work = Path(tempfile.mkdtemp(prefix="machine-bench-"))
    try:
        # The kernel is the same for every suite (bookworm's): one bare boot serves them all.
        bare = [bare_boot(builds[suites[0]][0], work) for _ in range(args.boots)]
        # The engine's own disk attached as `machine` attaches it: every boot starts the engine.
        # Each suite boots with emulation of other platforms on and off (the seed's platforms).
        guests = {}
        for suite, (image, engine) in builds.items():
            for emulation, seed in (("on", {}), ("off", {"platforms": "none\n"})):
                guests[suite, emulation] = Guest(image, work / f"{suite}-{emulation}", engine_disk=engine / "engine.img", seed_files=seed)
        results = boots(guests, args.boots)
        rows = {suite: measures(*builds[suite], results[suite, "on"], results[suite, "off"], statistics.median(bare)) for suite in suites}

        print(f"\nguest image benchmark ({args.boots} boots each, medians; QEMU TCG, 2 vCPU, 1 GiB; "
              f"bare kernel+busybox /init, the peer: {statistics.median(bare):.2f} s)")
        print_suites_table(suites, [(name, {s: rows[s][i][1:3] for s in suites}, target)
                                    for i, (name, _, _, target) in enumerate(rows[suites[0]])], 28, goal="target")
        print(f"samples: bare {bare}")
        for (suite, emulation), r in results.items():
            print(f"samples {suite}, emulation {emulation}: sshd {r['sshd']}, boot finished {r['finished']}, engine {r['ready']}")
            if emulation == "on":
                print("  boot steps of the last boot (uptime at each step's start): " + ", ".join(l for l in r["steps"] if l))
    finally:
        kill_guests_under(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
