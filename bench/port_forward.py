#!/usr/bin/env python3
"""TCP port forwarding: throughput of 1 GiB pulls and p50/p99 latency of small request/response
(64 bytes echoed, one connection) to the same guest listeners, through machine's agent
(`machine port add`), OpenSSH's `ssh -L`, and QEMU's own `hostfwd` (the floor of user-mode
networking, added through the QEMU monitor), in the same run. Goals: throughput >= 1.5x
OpenSSH's and >= 0.5x hostfwd's; echo p50 and p99 <= 1.0x OpenSSH's.

    bench/port_forward.py [--rounds N] [--echoes N] [--megabytes N]

--megabytes shortens each pull (1024 by default) for quick runs while working on latency;
OpenSSH's pulls take most of a full run's 15-20 minutes on a busy 2-core host.
"""
import json
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
from qemu_guest import free_port, release_machine  # noqa: E402

MACHINE = release_machine()
MIB = 1 << 20


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def pull(port, size):
    """Seconds to GET the guest's file of `size` bytes (HTTP/1.0: the body ends with the connection)."""
    t = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /blob HTTP/1.0\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:
            received += s.recv(65536)
        head, body = received.split(b"\r\n\r\n", 1)
        assert b" 200 " in head.split(b"\r\n")[0], head
        total = len(body)
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            total += len(chunk)
    assert total == size, f"got {total} bytes through port {port}"
    return time.perf_counter() - t


def echoes(port, count):
    """Round trips of 64 bytes on one connection to the guest's echo server."""
    times = []
    message = b"x" * 64
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            t = time.perf_counter()
            s.sendall(message)
            got = b""
            while len(got) < len(message):
                chunk = s.recv(64 - len(got))
                if not chunk:
                    raise SystemExit(f"the echo through port {port} closed after {len(times)} round trips")
                got += chunk
            times.append(time.perf_counter() - t)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--echoes", type=int, default=1000)
    parser.add_argument("--megabytes", type=int, default=1024, help="size of each pull, in MiB")
    args = parser.parse_args()
    size = args.megabytes * MIB
    work = Path(tempfile.mkdtemp(prefix="pbench-", dir="/tmp"))
    env = dict(os.environ, MACHINE_HOME=str(work / "home"))
    run = lambda *a: subprocess.run(list(a), env=env, check=True, capture_output=True)
    forward = None
    try:
        run(MACHINE, "up", "--no-context")
        # Guest listeners: busybox httpd with a sparse file (sent with sendfile, so the
        # guest's own copying costs little), and an echo server.
        run(MACHINE, "ssh", "--", "mkdir -p /var/lib/machine/bench && "
            "dd if=/dev/zero of=/var/lib/machine/bench/blob bs=1 count=0 seek=%d 2>/dev/null && "
            "busybox httpd -p 7000 -h /var/lib/machine/bench && "
            "(busybox nc -ll -p 7001 -e /bin/cat >/dev/null 2>&1 </dev/null &)" % size)
        ports = {name: (free_port(), free_port()) for name in ["machine agent", "OpenSSH ssh -L", "QEMU hostfwd"]}
        ours, theirs, floor = ports["machine agent"], ports["OpenSSH ssh -L"], ports["QEMU hostfwd"]
        run(MACHINE, "port", "add", f"{ours[0]}:7000")
        run(MACHINE, "port", "add", f"{ours[1]}:7001")
        config = work / "ssh_config"
        config.write_bytes(run(MACHINE, "ssh-config").stdout)
        forward = subprocess.Popen(["ssh", "-F", str(config), "-N", "-L", f"127.0.0.1:{theirs[0]}:127.0.0.1:7000",
                                    "-L", f"127.0.0.1:{theirs[1]}:127.0.0.1:7001", "machine-default"])
        domain = json.loads(run(MACHINE, "inspect").stdout)["domain"]
        for guest_port, host_port in [(7000, floor[0]), (7001, floor[1])]:
            run("virsh", "-c", "qemu:///system", "qemu-monitor-command", domain, "--hmp",
                f"hostfwd_add machinenet tcp:127.0.0.1:{host_port}-:{guest_port}")
        for pair in ports.values():
            wait_port(pair[0])
            wait_port(pair[1])

        speed = {name: [] for name in ports}
        latency = {name: [] for name in ports}
        for _ in range(args.rounds):
            for name, (bulk, echo) in ports.items():
                speed[name].append(size / 1e6 / pull(bulk, size))
                latency[name] += echoes(echo, args.echoes)

        med = statistics.median
        p99 = lambda v: sorted(v)[int(0.99 * (len(v) - 1))]
        print(f"\nTCP forward to the same guest listeners, same run (TCG guest); {args.rounds} x {args.megabytes} MiB, "
              f"{args.echoes} echoes per round")
        print(f"{'path':<16} {'MB/s (median)':>14} {'echo p50':>10} {'echo p99':>10}")
        for name in ports:
            print(f"{name:<16} {med(speed[name]):14.1f} {med(latency[name]) * 1e3:8.2f}ms {p99(latency[name]) * 1e3:8.2f}ms")
        a, o, q = (med(speed[n]) for n in ports)
        print(f"machine throughput: {a / o:.2f}x OpenSSH (goal >= 1.5x), {a / q:.2f}x hostfwd (goal >= 0.5x); "
              f"echo p50 {med(latency['machine agent']) / med(latency['OpenSSH ssh -L']):.2f}x, "
              f"p99 {p99(latency['machine agent']) / p99(latency['OpenSSH ssh -L']):.2f}x OpenSSH (goal <= 1.0x)")
    finally:
        if forward:
            forward.terminate()
        subprocess.run([MACHINE, "rm", "--force", "default"], env=env, capture_output=True)
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
