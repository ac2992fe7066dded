#!/usr/bin/env python3
"""Shared folders: a sequential write then read of a large file, and create + stat + delete of
many small files, through virtiofs, 9p and sshfs, in the same machine and run, as ratios.

sshfs is the peer: Debian's sshfs in the guest, fed by the host's sftp-server over OpenSSH,
the way Lima's default reverse-sshfs works. A machine's shares are all of one type, so the
machine boots twice (virtiofs, then 9p); each boot measures its share next to sshfs in
interleaved rounds, and the guest's own tmpfs is shown for scale.
Goal: the default share (virtiofs for root) >= 3x sshfs on small files, >= 1x on sequential.

    bench/shares.py [--runs N] [--megabytes MB] [--files N]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from qemu_guest import release_machine  # noqa: E402

MACHINE = release_machine()
NAME = "fsbench"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


class Bench:
    def __init__(self, work):
        self.work = work
        self.env = dict(os.environ, MACHINE_HOME=str(work / "home"))
        self.ssh_config = work / "ssh_config"

    def machine(self, *args):
        return subprocess.run([MACHINE, *args], env=self.env, check=True, capture_output=True, text=True).stdout

    def ssh(self, command, **kwargs):
        return subprocess.run(["ssh", "-F", str(self.ssh_config), f"machine-{NAME}", command],
                              check=True, capture_output=True, text=True, **kwargs).stdout

    def boot(self, kind, folder, first):
        if first:
            self.machine("create", NAME, "--mount", str(folder), "--mount-type", kind)
            self.machine("start", NAME)
        else:
            self.machine("up", NAME, "--no-context", "--mount", str(folder), "--mount-type", kind)
            self.machine("restart", NAME)
        self.ssh_config.write_text(self.machine("ssh-config", NAME))
        mounts = self.ssh("cat /proc/mounts")
        assert f" {kind} " in mounts or (kind == "9p" and " 9p " in mounts), mounts

    def mount_sshfs(self, bundle, folder):
        """Copies sshfs into the guest and mounts folder at /mnt/sshfs, served by the host's
        sftp-server through an OpenSSH session (sshfs -o passive, as Lima does)."""
        subprocess.run(f"tar -C {bundle} -cf - . | ssh -F {self.ssh_config} machine-{NAME} "
                       "'mkdir -p /tmp/sshfs && tar -C /tmp/sshfs -xf -'", shell=True, check=True)
        self.ssh("modprobe fuse; mkdir -p /mnt/sshfs /tmp/local")
        self.sftp = subprocess.Popen([SFTP_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.sshfs = subprocess.Popen(
            ["ssh", "-F", str(self.ssh_config), f"machine-{NAME}",
             f"LD_LIBRARY_PATH=/tmp/sshfs/lib /tmp/sshfs/bin/sshfs -f -o passive :{folder} /mnt/sshfs"],
            stdin=self.sftp.stdout, stdout=self.sftp.stdin)
        deadline = time.monotonic() + 30
        while " /mnt/sshfs fuse.sshfs " not in self.ssh("cat /proc/mounts"):
            assert time.monotonic() < deadline and self.sshfs.poll() is None, "sshfs did not mount"
            time.sleep(0.5)

    def unmount_sshfs(self):
        self.ssh("umount /mnt/sshfs")
        self.sshfs.wait(timeout=30)
        self.sftp.kill()
        self.sftp.wait()

    def workload(self, directory, megabytes, files):
        out = self.ssh(f"sh /tmp/fs-workload.sh '{directory}' {megabytes} {files}", timeout=1800)
        return {phase: float(seconds) for phase, seconds in (line.split() for line in out.splitlines())}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds per boot (default 3)")
    parser.add_argument("--megabytes", type=int, default=256, help="size of the sequential file (default 256)")
    parser.add_argument("--files", type=int, default=5000, help="small files (default 5000)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fsbench-", dir="/tmp"))
    bench = Bench(work)
    bundle = work / "sshfs-bundle"
    subprocess.run([str(REPO / "bench" / "lib" / "sshfs-bundle.sh"), str(bundle)], check=True)
    results = {}  # (kind, target) -> list of phase dicts
    try:
        for index, kind in enumerate(["virtiofs", "9p"]):
            share = work / f"share-{kind}"
            peer = work / f"sshfs-{kind}"
            share.mkdir()
            peer.mkdir()
            bench.boot(kind, share, first=index == 0)
            subprocess.run(["scp", "-q", "-F", str(bench.ssh_config), str(REPO / "bench" / "guest" / "fs-workload.sh"),
                            f"machine-{NAME}:/tmp/fs-workload.sh"], check=True)
            bench.mount_sshfs(bundle, peer)
            targets = [(kind, str(share)), ("sshfs", "/mnt/sshfs"), ("tmpfs", "/tmp/local")]
            for run in range(args.runs):
                # Rotated, so no target always runs first (or right after another's writes).
                for target, directory in targets[run % 3:] + targets[:run % 3]:
                    phases = bench.workload(directory, args.megabytes, args.files)
                    results.setdefault((kind, target), []).append(phases)
                    print(f"  {kind} boot, run {run + 1}, {target}: " + ", ".join(f"{p} {s:.2f} s" for p, s in phases.items()),
                          file=sys.stderr)
            bench.unmount_sshfs()
    finally:
        subprocess.run([MACHINE, "rm", "--force", NAME], env=bench.env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    report(results, args)


def report(results, args):
    def median(kind, target, phase):
        return statistics.median(r[phase] for r in results[(kind, target)])

    def small(kind, target):
        return sum(median(kind, target, p) for p in ("create", "stat", "delete"))

    mb = args.megabytes
    print(f"\n{args.megabytes} MB sequential, {args.files} small files; medians of {args.runs} interleaved runs per boot\n")
    print("| boot | target | write MB/s | read MB/s | create s | stat s | delete s | small files total s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind in ["virtiofs", "9p"]:
        for target in [kind, "sshfs", "tmpfs"]:
            print(f"| {kind} | {target} | {mb / median(kind, target, 'write'):.1f} | {mb / median(kind, target, 'read'):.1f} | "
                  f"{median(kind, target, 'create'):.2f} | {median(kind, target, 'stat'):.2f} | "
                  f"{median(kind, target, 'delete'):.2f} | {small(kind, target):.2f} |")
    print("\n| share | vs sshfs: write | read | small files | goal |")
    print("| --- | --- | --- | --- | --- |")
    for kind in ["virtiofs", "9p"]:
        write = median(kind, "sshfs", "write") / median(kind, kind, "write")
        read = median(kind, "sshfs", "read") / median(kind, kind, "read")
        files = small(kind, "sshfs") / small(kind, kind)
        print(f"| {kind} | {write:.2f}x | {read:.2f}x | {files:.2f}x | small files >= 3x, sequential >= 1x |")


if __name__ == "__main__":
    main()
