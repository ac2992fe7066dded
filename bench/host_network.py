#!/usr/bin/env python3
"""What containers see of the host's network (issue 32), against peers measured in the same run.

UDP: round trips of 1,400-byte datagrams (one at a time; p50 and p99) and a one-way burst
(throughput and loss) to a UDP echo server in a container, through
  - machine, port published on every address (-p H:7/udp: QEMU's forward, the engine's DNAT),
  - machine, port published on the guest's loopback (-p 127.0.0.1:H:7/udp: QEMU's forward to
    the loopback alias, then docker-proxy),
  - the peer: QEMU's own hostfwd added by hand to the same server in the guest's own network
    namespace (no DNAT, no bridge): the floor of user-mode networking.
Goal: p50 and p99 <= 1.5x the peer's.

DNS: lookup p50/p99 of a name from the host's /etc/hosts and of one served only by a resolver
on the host's loopback (dnsmasq), from a container (one A query at a time to its nameserver:
the guest's DNAT, QEMU, the agent's resolver, the host's getaddrinfo) against the host's own
getaddrinfo of the same names. Goal: p50 <= 2 ms over the host's.

    bench/host_network.py [--round-trips N] [--burst N] [--lookups N] [--runs N]
"""
import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from qemu_guest import busybox_image_tar, free_port, release_machine  # noqa: E402

MACHINE = release_machine()
DOCKER = "/usr/local/bin/docker"
SIZE = 1400


def round_trips(port, count):
    times = []
    lost = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        payload = os.urandom(SIZE)
        for _ in range(count):
            t = time.perf_counter()
            s.sendto(payload, ("127.0.0.1", port))
            try:
                s.recv(65536)
            except TimeoutError:
                lost += 1
                continue
            times.append(time.perf_counter() - t)
    return times, lost


def burst(port, count):
    """Sends `count` datagrams as fast as the socket takes them; MB/s of what came back and
    the share lost on the way (there and back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.connect(("127.0.0.1", port))
        payload = os.urandom(SIZE)
        received = 0
        t = time.perf_counter()
        s.setblocking(False)
        for _ in range(count):
            s.send(payload)
            try:
                while s.recv(65536):
                    received += 1
            except BlockingIOError:
                pass
        s.settimeout(1)
        last = time.perf_counter()
        try:
            while True:
                s.recv(65536)
                received += 1
                last = time.perf_counter()
        except (TimeoutError, BlockingIOError):
            pass
        return received * SIZE / 1e6 / (last - t), 1 - received / count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--round-trips", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nbench-", dir="/tmp"))
    env = dict(os.environ, MACHINE_HOME=str(work / "home"), DOCKER_CONFIG=str(work / "docker"))
    env["DOCKER_HOST"] = f"unix://{work / 'home/machines/default/docker.sock'}"
    run = lambda *a, **kw: subprocess.run(list(a), env=env, check=True, capture_output=True, **kw)
    hosts_backup = Path("/etc/hosts").read_text()
    resolv_backup = Path("/etc/resolv.conf").read_text()
    dnsmasq = None
    try:
        run(MACHINE, "up", "--no-mounts", "--no-context")
        run(DOCKER, "import", "--change", "ENV PATH=/bin", str(busybox_image_tar(work / "busybox")), "busybox:latest")
        context = work / "image"
        context.mkdir()
        run("gcc-12", "-static", "-O2", "-o", str(context / "udp_echo"), str(REPO / "tests/e2e/udp_echo.c"))
        run("gcc-12", "-static", "-O2", "-o", str(context / "dns_time"), str(REPO / "bench/dns_time.c"))
        run("gcc-12", "-O2", "-o", str(work / "dns_time_host"), str(REPO / "bench/dns_time.c"))
        (context / "Dockerfile").write_text("FROM busybox:latest\nCOPY udp_echo dns_time /bin/\n")
        run(DOCKER, "build", "-q", "-t", "netbench", str(context))

        # UDP: three ways to echo servers in the guest.
        paths = {"machine (any address)": free_port(socket.SOCK_DGRAM), "machine (guest loopback)": free_port(socket.SOCK_DGRAM), "QEMU hostfwd": free_port(socket.SOCK_DGRAM)}
        any_port, loopback_port, floor_port = paths.values()
        run(DOCKER, "run", "-d", "-p", f"{any_port}:7/udp", "netbench", "udp_echo", "7")
        run(DOCKER, "run", "-d", "-p", f"127.0.0.1:{loopback_port}:7/udp", "netbench", "udp_echo", "7")
        guest_port = random.randrange(40000, 50000)
        run(DOCKER, "run", "-d", "--network", "host", "netbench", "udp_echo", str(guest_port))
        domain = json.loads(run(MACHINE, "inspect").stdout)["domain"]
        run("virsh", "-c", "qemu:///system", "qemu-monitor-command", domain, "--hmp",
            f"hostfwd_add machinenet udp:127.0.0.1:{floor_port}-:{guest_port}")
        deadline = time.time() + 30
        while time.time() < deadline and not all(round_trips(p, 1)[1] == 0 for p in paths.values()):
            time.sleep(0.5)
        latency = {name: [] for name in paths}
        lost = {name: 0 for name in paths}
        speed = {name: [] for name in paths}
        loss = {name: [] for name in paths}
        for _ in range(args.runs):
            for name, port in paths.items():
                times, missing = round_trips(port, args.round_trips)
                latency[name] += times
                lost[name] += missing
                mbps, share = burst(port, args.burst)
                speed[name].append(mbps)
                loss[name].append(share)
        med = statistics.median
        p99 = lambda v: sorted(v)[int(0.99 * (len(v) - 1))]
        print(f"\nUDP, {SIZE}-byte datagrams, TCG guest, same run; {args.runs} x {args.round_trips} round trips, "
              f"{args.runs} bursts of {args.burst}")
        print(f"{'path':<26} {'rtt p50':>9} {'rtt p99':>9} {'lost':>5} {'burst MB/s':>11} {'burst loss':>11}")
        for name in paths:
            print(f"{name:<26} {med(latency[name]) * 1e3:7.2f}ms {p99(latency[name]) * 1e3:7.2f}ms {lost[name]:5d} "
                  f"{med(speed[name]):11.1f} {med(loss[name]) * 100:10.1f}%")
        floor = "QEMU hostfwd"
        for name in list(paths)[:2]:
            print(f"{name}: p50 {med(latency[name]) / med(latency[floor]):.2f}x, p99 {p99(latency[name]) / p99(latency[floor]):.2f}x "
                  f"QEMU hostfwd (goal <= 1.5x); burst {med(speed[name]) / med(speed[floor]):.2f}x")

        # DNS: a name in the host's /etc/hosts, and one only a resolver on the host's loopback knows.
        hosts_name = f"bench-{random.randrange(10**9)}.test"
        with open("/etc/hosts", "a") as hosts:
            hosts.write(f"192.0.2.77 {hosts_name}\n")
        upstream = [line.split()[1] for line in resolv_backup.splitlines() if line.startswith("nameserver")]
        dnsmasq = subprocess.Popen(["dnsmasq", "-k", "-u", "root", "--conf-file=/dev/null", "--no-hosts", "--no-resolv",
                                    "--bind-interfaces", "--listen-address=127.0.0.77", "--port=53",
                                    "--address=/bench-dnsmasq.test/192.0.2.78", *[f"--server={s}" for s in upstream]],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        Path("/etc/resolv.conf").write_text("nameserver 127.0.0.77\n" + resolv_backup)
        probe = run(DOCKER, "run", "-d", "netbench", "sleep", "36000").stdout.decode().strip()
        print(f"\nDNS lookups of one name, {args.runs} x {args.lookups}: from a container (A query to its nameserver) "
              "against the host's own getaddrinfo")
        print(f"{'name from':<30} {'host p50':>9} {'container p50':>14} {'p99':>9} {'over the host':>14}")
        for label, name in [("the host's /etc/hosts", hosts_name), ("dnsmasq on the host's loopback", "bench-dnsmasq.test")]:
            host, guest = [], []
            for _ in range(args.runs):
                line = run(str(work / "dns_time_host"), "getaddrinfo", name, str(args.lookups)).stdout.decode().split()
                host.append(float(line[2]))
                line = run(DOCKER, "exec", probe, "dns_time", "query", name, str(args.lookups)).stdout.decode().split()
                assert line[0] == "ok", line
                guest.append((float(line[2]), float(line[3])))
            host_p50 = med(host) / 1e3
            guest_p50 = med(g[0] for g in guest) / 1e3
            guest_p99 = med(g[1] for g in guest) / 1e3
            print(f"{label:<30} {host_p50:7.2f}ms {guest_p50:12.2f}ms {guest_p99:7.2f}ms {guest_p50 - host_p50:+12.2f}ms"
                  " (goal <= +2 ms)")
    finally:
        Path("/etc/hosts").write_text(hosts_backup)
        Path("/etc/resolv.conf").write_text(resolv_backup)
        if dnsmasq:
            dnsmasq.terminate()
        subprocess.run([MACHINE, "rm", "--force", "default"], env=env, capture_output=True)
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
