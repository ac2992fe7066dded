#!/usr/bin/env python3
"""The forwarded engine socket: `/_ping` latency (a new connection per request, as the docker
CLI makes one per command) and a 256 MB `docker load`, through machine's agent socket and
through OpenSSH's `ssh -L SOCK:/var/run/docker.sock` to the same VM, in the same run,
interleaved. Goal: latency <= 1.0x and throughput >= 1.0x of OpenSSH's.

    bench/socket_forward.py [--pings N] [--loads N]
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from qemu_guest import busybox_image_tar, wait_for_ping, release_machine  # noqa: E402

MACHINE = release_machine()
DOCKER = "/usr/local/bin/docker"


def ping(path):
    t = time.perf_counter()
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(path))
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"OK"), data
    return time.perf_counter() - t


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sbench-", dir="/tmp"))
    home = work / "home"
    env = dict(os.environ, MACHINE_HOME=str(home), DOCKER_CONFIG=str(work / "docker"))
    run = lambda *a, **k: subprocess.run(list(a), env=env, check=True, capture_output=True, **k)
    ours = home / "machines" / "default" / "docker.sock"
    theirs = work / "openssh.sock"
    forward = None
    try:
        run(MACHINE, "up", "--no-context")
        config = work / "ssh_config"
        config.write_bytes(run(MACHINE, "ssh-config").stdout)
        forward = subprocess.Popen(["ssh", "-F", str(config), "-N", "-o", "StreamLocalBindUnlink=yes",
                                    "-L", f"{theirs}:/var/run/docker.sock", "machine-default"])
        wait_for_ping(theirs)
        sockets = {"machine agent": ours, "OpenSSH ssh -L": theirs}

        latency = {name: [] for name in sockets}
        for _ in range(20):
            for path in sockets.values():
                ping(path)  # warm up
        for _ in range(args.pings // 50):
            for name, path in sockets.items():
                latency[name] += [ping(path) for _ in range(50)]

        # A 256 MB image: busybox plus one incompressible layer.
        tar = busybox_image_tar(work / "busybox")
        docker = lambda sock, *a, **k: run(DOCKER, "-H", f"unix://{sock}", *a, **k)
        docker(ours, "import", str(tar), "busybox:bench")
        context = work / "ctx"
        context.mkdir()
        with open(context / "payload.bin", "wb") as f:
            for _ in range(256):
                f.write(os.urandom(1 << 20))
        (context / "Dockerfile").write_text("FROM busybox:bench\nCOPY payload.bin /payload.bin\n")
        subprocess.run([DOCKER, "-H", f"unix://{ours}", "build", "-q", "-t", "load:bench", str(context)],
                       env=dict(env, DOCKER_BUILDKIT="0"), check=True, capture_output=True)
        image = work / "load.tar"
        docker(ours, "save", "-o", str(image), "load:bench")
        size_mb = image.stat().st_size / 1e6
        load = {name: [] for name in sockets}
        for _ in range(args.loads):
            for name, path in sockets.items():
                docker(path, "rmi", "load:bench")
                t = time.perf_counter()
                docker(path, "load", "-q", "-i", str(image))
                load[name].append(time.perf_counter() - t)

        med = statistics.median
        base = "OpenSSH ssh -L"
        print(f"\nengine socket forward, same VM, same run (TCG guest); {args.pings} pings and {args.loads} loads of {size_mb:.0f} MB each")
        print(f"{'path':<16} {'ping p50':>10} {'ping p99':>10} {'load median':>12} {'MB/s':>7}")
        for name in sockets:
            print(f"{name:<16} {med(latency[name]) * 1e3:8.2f}ms {percentile(latency[name], 99) * 1e3:8.2f}ms "
                  f"{med(load[name]):10.2f} s {size_mb / med(load[name]):7.1f}")
        p50 = med(latency["machine agent"]) / med(latency[base])
        p99 = percentile(latency["machine agent"], 99) / percentile(latency[base], 99)
        throughput = med(load[base]) / med(load["machine agent"])
        print(f"machine / OpenSSH: ping p50 {p50:.2f}x, p99 {p99:.2f}x (goal <= 1.0x); load throughput {throughput:.2f}x (goal >= 1.0x)")
    finally:
        if forward:
            forward.terminate()
        subprocess.run([MACHINE, "rm", "--force", "default"], env=env, capture_output=True)
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
