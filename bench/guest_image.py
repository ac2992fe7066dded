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
ratio is what registering the emulators costs on the way to "engine ready".

    bench/guest_image.py [--boots N]
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from qemu_guest import Guest, kill_guests_under, wait_for_ping, release_machine  # noqa: E402


def build():
    out = subprocess.run([release_machine(), "image", "build", "--quiet"], capture_output=True, text=True, check=True).stdout
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


def boots(image, engine, folder, count, seed_files):
    """Boots a guest count + 1 times (the first formats the data disk and makes the host key,
    so only the later ones count): uptimes at sshd ready, boot finished, engine starting and
    engine ready, the boot steps and /proc/meminfo of the last one."""
    guest = Guest(image, folder, engine_disk=engine / "engine.img", seed_files=seed_files)
    sshd, finished, starting, ready, steps, meminfo = [], [], [], [], [], {}
    sock = folder / "docker.sock"
    for i in range(count + 1):
        guest.start()
        guest.wait_for("sshd ready")
        guest.pin_host_key()
        ready_at = guest.wait_for("engine ready", timeout=180)
        if i > 0:
            sshd.append(guest.wait_for("sshd ready"))
            finished.append(guest.wait_for("boot finished"))
            starting.append(float(re.search(r"\[([0-9.]+)\] machine: engine starting", guest.console_text()).group(1)))
            ready.append(ready_at)
        if i == count:
            steps = guest.ssh("cat /run/machine/boot-steps").stdout.decode().split("\n")
            guest.forward_socket(sock)
            wait_for_ping(sock)
            time.sleep(5)  # let the engine settle to idle
            meminfo = dict(l.split(":") for l in guest.ssh("cat /proc/meminfo").stdout.decode().splitlines())
        guest.poweroff()
    return sshd, finished, starting, ready, steps, meminfo


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boots", type=int, default=5)
    args = parser.parse_args()
    image, engine = build()
    work = Path(tempfile.mkdtemp(prefix="machine-bench-"))
    try:
        iso_mb = (image / "machine.iso").stat().st_size / 1e6
        bundle_mb = (engine / "engine.tar.xz").stat().st_size / 1e6
        disk_mb = (engine / "engine.img").stat().st_size / 1e6
        bare = [bare_boot(image, work) for _ in range(args.boots)]
        # The engine's own disk attached as `machine` attaches it: every boot starts the engine.
        sshd, finished, starting, ready, steps, meminfo = boots(image, engine, work / "vm", args.boots, {})
        _, _, _, ready_off, _, _ = boots(image, engine, work / "vm-off", args.boots, {"platforms": "none\n"})
        kb = lambda k: int(meminfo[k].split()[0])
        # `free`'s "used": what is neither free nor reclaimable cache. The unpacked initramfs
        # (the root filesystem, in shmem) is shown beside it, and MemTotal-MemAvailable too,
        # which also counts the kernel's reserves.
        used_mb = (kb("MemTotal") - kb("MemFree") - kb("Buffers") - kb("Cached") - kb("SReclaimable")) / 1024
        shmem_mb = kb("Shmem") / 1024
        unavailable_mb = (kb("MemTotal") - kb("MemAvailable")) / 1024

        med = statistics.median
        engine_own = [r - s for r, s in zip(ready, starting)]
        rows = [
            ("ISO size", f"{iso_mb:.1f} MB", "<= 40 MB"),
            ("engine bundle / disk size", f"{bundle_mb:.1f} MB / {disk_mb:.1f} MB", "<= 60 MB"),
            ("bare kernel+busybox /init (peer)", f"{med(bare):.2f} s", ""),
            ("sshd ready (guest uptime)", f"{med(sshd):.2f} s  ({med(sshd) / med(bare):.2f}x bare)", "<= 4 s"),
            ("boot steps finished", f"{med(finished):.2f} s  ({med(finished) / med(bare):.2f}x bare)", ""),
            ("engine ready (API listening)", f"{med(ready):.2f} s  ({med(ready) / med(bare):.2f}x bare)", "<= 2.5x bare"),
            ("  of which the engine's own start", f"{med(engine_own):.2f} s", ""),
            ("engine ready, emulation off (peer)", f"{med(ready_off):.2f} s  (on: {med(ready) / med(ready_off):.2f}x off)", "on <= 1.0x off"),
            ("guest memory used, engine idle", f"{used_mb:.0f} MB (+{shmem_mb:.0f} MB rootfs)", "<= 150 MB"),
            ("  MemTotal - MemAvailable", f"{unavailable_mb:.0f} MB", ""),
        ]
        print(f"\nguest image benchmark ({args.boots} boots each, medians; QEMU TCG, 2 vCPU, 1 GiB)")
        print(f"{'measure':<36} {'result':<28} target")
        for name, value, target in rows:
            print(f"{name:<36} {value:<28} {target}")
        print(f"samples: bare {bare}, sshd {sshd}, boot finished {finished}, engine {ready}, engine with emulation off {ready_off}")
        print("boot steps of the last boot (uptime at each step's start): " + ", ".join(l for l in steps if l))
    finally:
        kill_guests_under(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
