#!/usr/bin/env python3
"""QEMU's resident memory of a 1 GiB machine, idle after boot and after a workload, next to the
same machine booted without what gives memory back (no balloon with free page reporting, and
QEMU's default TCG code cache of 1 GiB instead of the 512 MiB the domain asks for), in one run,
medians over rounds, the two alternated.

The workload: 8 `docker run --rm busybox true` one after the other, one container that writes
600 MiB to a tmpfs, then 20 `docker run --rm` at once. Resident memory is read from
/proc/PID/status (VmRSS) 60 s after the engine answers (idle) and 30 s after the workload.
The machine without the change is the same domain, edited with virsh and started by it; its
engine is reached through OpenSSH's own socket forward (`ssh -L`), as no agent runs for it.
Goal (issue 34): idle after the workload <= 400 MiB under TCG.

    bench/memory.py [--rounds N]
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from qemu_guest import busybox_image_tar, release_machine, wait_for_ping  # noqa: E402

MACHINE = release_machine()
DOCKER = "/usr/local/bin/docker"
VIRSH = ["virsh", "-q", "-c", "qemu:///system" if os.getuid() == 0 else "qemu:///session"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="membench-", dir="/tmp"))
    env = dict(os.environ, MACHINE_HOME=str(work / "home"))
    env.pop("DOCKER_CONTEXT", None)
    own_socket = work / "home" / "machines" / "default" / "docker.sock"
    ssh_socket = work / "ssh-forward.sock"

    def machine(*a):
        return subprocess.run([MACHINE, *a], env=env, check=True, capture_output=True, text=True)

    def docker(socket_path, *a):
        return subprocess.run([DOCKER, "-H", f"unix://{socket_path}", *a], capture_output=True, text=True, check=True, timeout=900)

    def resident_mib(domain):
        pid = subprocess.run(["pgrep", "-f", f"guest={domain},"], capture_output=True, text=True).stdout.split()[0]
        status = Path(f"/proc/{pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) // 1024

    def measure(domain, socket_path):
        wait_for_ping(socket_path, timeout=300)
        time.sleep(60)
        idle = resident_mib(domain)
        for _ in range(8):
            docker(socket_path, "run", "--rm", "busybox", "true")
        docker(socket_path, "run", "--rm", "--tmpfs", "/big:size=700m", "busybox", "dd", "if=/dev/zero", "of=/big/f", "bs=1M", "count=600")
        with ThreadPoolExecutor(20) as pool:
            list(pool.map(lambda _: docker(socket_path, "run", "--rm", "busybox", "true"), range(20)))
        time.sleep(30)
        return idle, resident_mib(domain)

    def without_change(domain):
        """The machine's domain booted by virsh with no balloon and QEMU's default code cache."""
        xml = subprocess.run([*VIRSH, "dumpxml", "--inactive", domain], capture_output=True, text=True, check=True).stdout
        xml = re.sub(r"<tcg>.*?</tcg>", "", xml, flags=re.S)
        xml = re.sub(r"<memballoon .*?</memballoon>", "<memballoon model='none'/>", xml, flags=re.S)
        edited = work / "without.xml"
        edited.write_text(xml)
        subprocess.run([*VIRSH, "define", str(edited)], check=True, capture_output=True)
        subprocess.run([*VIRSH, "start", domain], check=True, capture_output=True)
        config = work / "ssh-config"
        config.write_text(machine("ssh-config").stdout)
        deadline = time.time() + 300
        while subprocess.run([MACHINE, "ssh", "--", "true"], env=env, capture_output=True).returncode != 0:
            if time.time() > deadline:
                raise SystemExit("the guest booted by virsh did not answer on SSH")
            time.sleep(1)
        ssh_socket.unlink(missing_ok=True)
        forward = subprocess.Popen(["ssh", "-F", str(config), "-N", "-o", "ExitOnForwardFailure=yes",
                                    "-L", f"{ssh_socket}:/var/run/docker.sock", "machine-default"])
        try:
            return measure(domain, ssh_socket)
        finally:
            forward.terminate()
            subprocess.run([*VIRSH, "destroy", domain], capture_output=True)

    results = {"with": [], "without": []}
    try:
        machine("up", "--no-mounts", "--no-context")
        domain = json.loads(machine("inspect").stdout)["domain"]
        docker(own_socket, "import", str(busybox_image_tar(work / "busybox")), "busybox")
        machine("stop")
        for round in range(args.rounds):
            for variant in (["with", "without"] if round % 2 == 0 else ["without", "with"]):
                if variant == "with":
                    machine("start")
                    results["with"].append(measure(domain, own_socket))
                    machine("stop")
                else:
                    results["without"].append(without_change(domain))
                print(f"round {round + 1} {variant}: idle {results[variant][-1][0]} MiB, after the workload {results[variant][-1][1]} MiB", flush=True)
    finally:
        subprocess.run([MACHINE, "rm", "--force", "default"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    def median(variant, index):
        return statistics.median(r[index] for r in results[variant])

    print(f"\nQEMU resident memory, 1 GiB machine, medians of {args.rounds} rounds (MiB):")
    print(f"{'':34}{'with':>8}{'without':>9}{'ratio':>8}")
    for label, index in (("idle, 60 s after the engine", 0), ("30 s after the workload", 1)):
        w, wo = median("with", index), median("without", index)
        print(f"{label:34}{w:>8}{wo:>9}{w / wo:>7.2f}x")


if __name__ == "__main__":
    main()
