#!/usr/bin/env python3
"""The forwarded engine socket, through machine's agent socket and through OpenSSH's
`ssh -L SOCK:/var/run/docker.sock` to the same VM, in the same run, interleaved:
- `/_ping` latency on a new connection per request, as the docker CLI makes one per command;
- `/containers/json` latency on one warm (keep-alive) connection, as SDKs and compose keep one;
- `docker exec` of `true` in a running container, the whole CLI command timed;
- a 256 MB `docker load`.
Goal: latency <= 1.0x and throughput >= 1.0x of OpenSSH's.

    bench/socket_forward.py [--pings N] [--requests N] [--execs N] [--loads N]
"""
import argparse
import http.client
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


class UnixHTTPConnection(http.client.HTTPConnection):
    """One keep-alive HTTP/1.1 connection to a unix socket (http.client reads chunked and
    sized bodies alike)."""

    def __init__(self, path):
        super().__init__("docker")
        self.path = str(path)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


def warm_requests(connection, count):
    """Seconds for each of `count` GET /containers/json on one open connection."""
    times = []
    for _ in range(count):
        t = time.perf_counter()
        connection.request("GET", "/containers/json")
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200 and body.startswith(b"["), (response.status, body[:200])
        times.append(time.perf_counter() - t)
    return times


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--execs", type=int, default=40)
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

        tar = busybox_image_tar(work / "busybox")
        docker = lambda sock, *a, **k: run(DOCKER, "-H", f"unix://{sock}", *a, **k)
        docker(ours, "import", str(tar), "busybox:bench")
        # A running container, so /containers/json has a body and `docker exec` a target.
        docker(ours, "run", "-d", "--name", "bench", "busybox:bench", "sleep", "3600")

        warm = {name: [] for name in sockets}
        connections = {name: UnixHTTPConnection(path) for name, path in sockets.items()}
        for connection in connections.values():
            warm_requests(connection, 20)  # warm up
        for _ in range(max(1, args.requests // 50)):
            for name, connection in connections.items():
                warm[name] += warm_requests(connection, 50)
        for connection in connections.values():
            connection.close()

        execs = {name: [] for name in sockets}
        for _ in range(args.execs):
            for name, path in sockets.items():
                t = time.perf_counter()
                docker(path, "exec", "bench", "true")
                execs[name].append(time.perf_counter() - t)

        # A 256 MB image: busybox plus one incompressible layer.
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
        ms = lambda v, p: f"{percentile(v, p) * 1e3:8.2f}ms"
        print(f"\nengine socket forward, same VM, same run (TCG guest); {args.pings} pings (new connection each), "
              f"{len(warm[base])} /containers/json on a warm connection, {args.execs} `docker exec bench true`, "
              f"{args.loads} loads of {size_mb:.0f} MB each")
        print(f"{'path':<16} {'ping p50':>10} {'ping p99':>10} {'json p50':>10} {'json p99':>10} {'exec p50':>10} "
              f"{'exec p99':>10} {'load MB/s':>10}")
        for name in sockets:
            print(f"{name:<16} {ms(latency[name], 50)} {ms(latency[name], 99)} {ms(warm[name], 50)} {ms(warm[name], 99)} "
                  f"{ms(execs[name], 50)} {ms(execs[name], 99)} {size_mb / med(load[name]):10.1f}")
        ratio = lambda v, p: percentile(v["machine agent"], p) / percentile(v[base], p)
        throughput = med(load[base]) / med(load["machine agent"])
        print(f"machine / OpenSSH (goal <= 1.0x): ping p50 {ratio(latency, 50):.2f}x, p99 {ratio(latency, 99):.2f}x; "
              f"warm json p50 {ratio(warm, 50):.2f}x, p99 {ratio(warm, 99):.2f}x; exec p50 {ratio(execs, 50):.2f}x, "
              f"p99 {ratio(execs, 99):.2f}x; load throughput {throughput:.2f}x (goal >= 1.0x)")
    finally:
        if forward:
            forward.terminate()
        subprocess.run([MACHINE, "rm", "--force", "default"], env=env, capture_output=True)
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
