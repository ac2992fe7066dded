"""End to end: what a container sees of the host and the network (issue 32), through the real
docker CLI and compose v1 on one machine for the whole module: the host by name from every kind
of network, published UDP ports, names resolved as the host resolves them (its /etc/hosts and a
resolver on its loopback), a registry on the host behind a private CA and a proxy from the
user's environment, and the door that cuts containers off from the host. The tests run in file
order: the CA test restarts the machine, the last one closes the door."""
import http.server
import json
import os
import random
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import Up, machine_binary
from qemu_guest import busybox_image_tar, free_port

HERE = Path(__file__).resolve().parent


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def host_web(tmp_path_factory):
    """A web server on the host's 127.0.0.1 only, serving a file with a marker."""
    root = tmp_path_factory.mktemp("host-web")
    marker = f"served-by-the-host-{random.randrange(10**9)}"
    (root / "marker").write_text(marker + "\n")
    handler = lambda *a, **kw: Quiet(*a, directory=str(root), **kw)  # noqa: E731
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], marker
    server.shutdown()


@pytest.fixture(scope="module")
def net(tmp_path_factory, cache_dir, built):
    home = tmp_path_factory.mktemp("net-home")
    machine = Up(home, cache_dir, tmp_path_factory.mktemp("net-work"))
    try:
        result = machine.machine("up", "--no-mounts", "--no-context")
        machine.up_output = result.stdout.decode() + result.stderr.decode()
        machine.env["DOCKER_HOST"] = f"unix://{machine.socket}"
        tar = busybox_image_tar(machine.work / "busybox")
        machine.docker("import", "--change", "ENV PATH=/bin", str(tar), "busybox:latest")
        # The UDP echo server: a static binary in a busybox image (Debian 12's busybox has no UDP nc).
        context = machine.work / "udp-echo"
        context.mkdir()
        subprocess.run(["gcc-12", "-static", "-O2", "-o", str(context / "udp_echo"), str(HERE / "udp_echo.c")], check=True)
        (context / "Dockerfile").write_text("FROM busybox:latest\nCOPY udp_echo /bin/udp_echo\nCMD [\"/bin/udp_echo\", \"7\"]\n")
        machine.docker("build", "-q", "-t", "udp-echo", str(context), timeout=600)
        machine.docker("run", "-d", "--name", "resolver-probe", "busybox", "sleep", "36000")
        yield machine
    finally:
        machine.machine("rm", "--force", "default", check=False, timeout=180)


def in_container(net, script, *run_args, check=True, timeout=120):
    return net.docker("run", "--rm", *run_args, "busybox", "sh", "-c", script, check=check, timeout=timeout)


def wait_for(predicate, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} within {seconds} s")


# --- the host by name ---------------------------------------------------------------------

def test_the_host_answers_by_name_on_the_default_bridge_and_a_user_network(net, host_web):
    port, marker = host_web
    fetch = f"wget -qO- http://host.docker.internal:{port}/marker"
    assert in_container(net, fetch).stdout.strip() == marker
    assert in_container(net, f"wget -qO- http://gateway.docker.internal:{port}/marker").stdout.strip() == marker
    net.docker("network", "create", "netapp")
    try:
        assert in_container(net, fetch, "--network", "netapp").stdout.strip() == marker
    finally:
        net.docker("network", "rm", "netapp", check=False)
    # host-gateway means the host too, not the guest's docker0.
    assert in_container(net, f"wget -qO- http://db:{port}/marker", "--add-host", "db:host-gateway").stdout.strip() == marker
    # The guest itself (the engine's pulls) names the host the same way.
    hosts = net.machine("ssh", "--", "cat /etc/hosts").stdout.decode()
    assert "10.0.2.2 host.docker.internal" in hosts


def test_a_compose_service_reaches_the_host_by_name_and_through_extra_hosts(net, host_web, tmp_path):
    port, marker = host_web
    (tmp_path / "docker-compose.yml").write_text(f"""
version: "3.7"
services:
  probe:
    image: busybox:latest
    extra_hosts: ["api.local:host-gateway"]
    command: ["sh", "-c", "wget -qO- http://host.docker.internal:{port}/marker && wget -qO- http://api.local:{port}/marker"]
""")
    env = dict(net.env, COMPOSE_PROJECT_NAME="netprobe")
    try:
        result = subprocess.run(["docker-compose", "up", "--abort-on-container-exit", "--exit-code-from", "probe"],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(marker) == 2, result.stdout
    finally:
        subprocess.run(["docker-compose", "down"], cwd=tmp_path, env=env, capture_output=True, timeout=120)


# --- UDP ----------------------------------------------------------------------------------

def forwarded(net, port, proto="udp"):
    for line in net.machine("port", "ls").stdout.decode().splitlines()[1:]:
        fields = line.split()
        if fields and fields[0].endswith(f":{port}") and fields[2] == proto:
            return fields[-1] == "forwarding" and line
    return False


def echo_round_trips(port, count, size_of=lambda i: 1 + (i * 37) % 1400, tag=b"", timeout=2.0):
    """Sends `count` datagrams one after another and checks each reply is the same datagram;
    returns how many were lost."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        lost = 0
        for i in range(count):
            payload = tag + (b"%06d" % i) + os.urandom(max(size_of(i) - 6 - len(tag), 0))
            s.sendto(payload, ("127.0.0.1", port))
            try:
                reply = s.recv(65536)
            except TimeoutError:
                lost += 1
                continue
            assert reply == payload, f"datagram {i}: sent {len(payload)} bytes, got {len(reply)} back, not the same"
        return lost


def test_a_published_udp_port_is_forwarded_keeps_datagrams_and_clients_apart(net):
    port = free_port(socket.SOCK_DGRAM)
    net.docker("run", "-d", "--name", "udp-echo", "-p", f"{port}:7/udp", "udp-echo")
    try:
        wait_for(lambda: forwarded(net, port), 30, f"port ls showing {port}/udp forwarding")
        # 1,000 datagrams of 1 to 1,400 bytes, one at a time: none lost, each comes back whole.
        assert echo_round_trips(port, 1000) == 0
        # Two host clients at once: each gets only its own replies.
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for s in (a, b):
            s.settimeout(2)
        try:
            for i in range(100):
                a.sendto(b"client-a %d" % i, ("127.0.0.1", port))
                b.sendto(b"client-b %d" % i, ("127.0.0.1", port))
                assert a.recv(100) == b"client-a %d" % i
                assert b.recv(100) == b"client-b %d" % i
        finally:
            a.close()
            b.close()
    finally:
        net.docker("rm", "-f", "udp-echo")
    # Removing the container closes the port: it leaves port ls and the host port is free.
    wait_for(lambda: not forwarded(net, port) and not f":{port} " in net.machine("port", "ls").stdout.decode(), 30,
             f"{port}/udp gone from port ls")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))


def test_udp_published_on_the_guests_loopback_and_a_manual_udp_forward(net):
    loopback = free_port(socket.SOCK_DGRAM)
    manual = free_port(socket.SOCK_DGRAM)
    net.docker("run", "-d", "--name", "udp-local", "-p", f"127.0.0.1:{loopback}:7/udp", "udp-echo")
    try:
        wait_for(lambda: forwarded(net, loopback), 30, f"{loopback}/udp forwarding")
        assert echo_round_trips(loopback, 50) == 0
        # A manual forward of a port of the machine itself (here the engine's own UDP proxy).
        out = net.machine("port", "add", f"{manual}:{loopback}/udp").stdout.decode()
        assert f"{manual}/udp" in out
        wait_for(lambda: forwarded(net, manual), 30, f"manual {manual}/udp forwarding")
        assert echo_round_trips(manual, 50) == 0
        net.machine("port", "rm", f"{manual}/udp")
        wait_for(lambda: not forwarded(net, manual), 30, f"manual {manual}/udp removed")
    finally:
        net.docker("rm", "-f", "udp-local")


# --- DNS that follows the host ------------------------------------------------------------

def lookup(net, name, kind):
    """nslookup in a running container (its answer, or None): one try, no retry loop."""
    result = net.docker("exec", "resolver-probe", "sh", "-c", f"nslookup -type={kind} {name}", check=False, timeout=60)
    return result.stdout if result.returncode == 0 else None


@pytest.fixture
def host_etc_hosts():
    original = Path("/etc/hosts").read_text()
    yield
    Path("/etc/hosts").write_text(original)


def test_a_name_added_to_the_hosts_etc_hosts_resolves_at_once_a_and_aaaa(net, host_etc_hosts):
    name = f"added-{random.randrange(10**9)}.test"
    assert lookup(net, name, "a") is None or "192.0.2.44" not in lookup(net, name, "a")
    with open("/etc/hosts", "a") as hosts:
        hosts.write(f"192.0.2.44 {name}\n2001:db8::44 {name}\n")
    # The very next lookup finds it: nothing between the container and the host caches it.
    assert "192.0.2.44" in (lookup(net, name, "a") or "")
    assert "2001:db8::44" in (lookup(net, name, "aaaa") or "")
    # A user network's containers ask Docker's embedded DNS, which forwards to the same place.
    net.docker("network", "create", "dnsnet")
    try:
        assert "192.0.2.44" in in_container(net, f"nslookup -type=a {name}", "--network", "dnsnet").stdout
    finally:
        net.docker("network", "rm", "dnsnet", check=False)


@pytest.fixture
def loopback_resolver(tmp_path):
    """dnsmasq on 127.0.0.77:53 serving names no other server knows, made the host's first
    nameserver for the test (resolv.conf is put back afterwards, also after a killed run)."""
    backup = Path("/var/tmp/machine-e2e-resolv.conf")
    if backup.exists():  # a run killed mid-test left the host's resolv.conf changed
        Path("/etc/resolv.conf").write_text(backup.read_text())
    original = Path("/etc/resolv.conf").read_text()
    backup.write_text(original)
    upstream = [line.split()[1] for line in original.splitlines() if line.startswith("nameserver")]
    dnsmasq = subprocess.Popen(
        ["dnsmasq", "-k", "-u", "root", "--conf-file=/dev/null", "--no-hosts", "--no-resolv", "--bind-interfaces",
         "--listen-address=127.0.0.77", "--port=53", f"--pid-file={tmp_path / 'dnsmasq.pid'}",
         "--address=/only-dnsmasq.test/192.0.2.20", "--address=/only-dnsmasq.test/2001:db8::20",
         "--srv-host=_svc._tcp.only-dnsmasq.test,target.only-dnsmasq.test,8080",
         *[f"--server={server}" for server in upstream]],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: subprocess.run(["getent", "hosts", "localhost"], capture_output=True).returncode == 0, 5, "host resolver")
        time.sleep(0.5)
        assert dnsmasq.poll() is None, dnsmasq.stderr.read().decode()
        Path("/etc/resolv.conf").write_text("nameserver 127.0.0.77\n" + original)
        yield
    finally:
        Path("/etc/resolv.conf").write_text(original)
        backup.unlink(missing_ok=True)
        dnsmasq.terminate()
        dnsmasq.wait(timeout=10)


def test_names_served_only_by_a_resolver_on_the_hosts_loopback_resolve(net, loopback_resolver):
    assert subprocess.run(["getent", "hosts", "only-dnsmasq.test"], capture_output=True).returncode == 0
    assert "192.0.2.20" in (lookup(net, "only-dnsmasq.test", "a") or "")
    assert "2001:db8::20" in (lookup(net, "only-dnsmasq.test", "aaaa") or "")
    # Other types than A and AAAA go to the host's nameservers as they are.
    srv = lookup(net, "_svc._tcp.only-dnsmasq.test", "srv") or ""
    assert "8080" in srv and "target.only-dnsmasq.test" in srv, srv


# --- a registry behind a private CA, and a proxy ------------------------------------------

def make_ca_and_server_cert(folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (folder / f for f in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name} test CA",
                    "-keyout", ca_key, "-out", ca], check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=host.docker.internal",
                    "-keyout", key, "-out", csr], check=True, capture_output=True)
    (folder / "san.ext").write_text("subjectAltName=DNS:host.docker.internal\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
                    "-extfile", folder / "san.ext", "-out", cert], check=True, capture_output=True)
    return ca, cert, key


def start_registry(folder, cert, key):
    port = free_port()
    (folder / "config.yml").write_text(f"""version: 0.1
log: {{level: warn}}
storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}}}
http:
  addr: 127.0.0.1:{port}
  tls: {{certificate: {cert}, key: {key}}}
""")
    registry = subprocess.Popen(["docker-registry", "serve", str(folder / "config.yml")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    wait_for(listening, 20, "the registry listening")
    return registry, port


class ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP CONNECT proxy on the host's loopback that remembers what it was asked for."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.asked = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                request = self.rfile.readline().decode()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                method, target, _ = request.split(" ", 2)
                proxy.asked.append(f"{method} {target}")
                host, port = target.rsplit(":", 1)
                # The host's names of itself: what the guest called host.docker.internal.
                upstream = socket.create_connection(("127.0.0.1" if host == "host.docker.internal" else host, int(port)))
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()

                def pump(src, dst):
                    try:
                        while data := src.recv(65536):
                            dst.sendall(data)
                    except OSError:
                        pass
                    finally:
                        try:
                            dst.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                back = threading.Thread(target=pump, args=(upstream, self.connection), daemon=True)
                back.start()
                pump(self.connection, upstream)
                back.join(60)
                upstream.close()

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def host_ca(tmp_path):
    """A CA installed in the host's trust store the Debian way, removed afterwards."""
    installed = []

    def install(ca):
        target = Path(f"/usr/local/share/ca-certificates/machine-e2e-{random.randrange(10**9)}.crt")
        shutil.copy(ca, target)
        installed.append(target)
        subprocess.run(["update-ca-certificates"], check=True, capture_output=True)
    yield install
    for target in installed:
        target.unlink(missing_ok=True)
    if installed:
        subprocess.run(["update-ca-certificates", "--fresh"], check=True, capture_output=True)


def test_a_registry_on_the_host_behind_private_cas_and_a_proxy_from_the_environment(net, tmp_path, host_ca):
    ca, cert, key = make_ca_and_server_cert(tmp_path / "system-ca", "system")
    registry, port = start_registry(tmp_path / "system-ca", cert, key)
    ca2, cert2, key2 = make_ca_and_server_cert(tmp_path / "certs-d-ca", "certs.d")
    registry2, port2 = start_registry(tmp_path / "certs-d-ca", cert2, key2)
    proxy = ConnectProxy()
    try:
        image = f"host.docker.internal:{port}/e2e/busybox:1"
        image2 = f"host.docker.internal:{port2}/e2e/busybox:2"
        net.docker("tag", "busybox:latest", image)
        net.docker("tag", "busybox:latest", image2)
        refused = net.docker("push", image, check=False)
        assert refused.returncode != 0 and "x509" in refused.stderr, refused.stderr
        # Trusted the host's ways: one CA in the system store, one in the docker CLI's certs.d.
        host_ca(ca)
        certs_d = Path(net.env["DOCKER_CONFIG"]) / "certs.d" / f"host.docker.internal:{port2}"
        certs_d.mkdir(parents=True)
        shutil.copy(ca2, certs_d / "ca.crt")
        net.machine("restart")
        for name in (image, image2):
            net.docker("push", name)
            net.docker("rmi", name)
            net.docker("pull", name)
        # A proxy in the user's environment on the host's loopback: `up` passes it on, named as
        # the guest reaches it, and the engine's pulls go through it.
        env = dict(net.env, HTTPS_PROXY=f"http://127.0.0.1:{proxy.server_address[1]}")
        result = subprocess.run([str(machine_binary()), "up", "--no-context"], env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        assert f"HTTPS_PROXY=http://host.docker.internal:{proxy.server_address[1]}" in result.stderr
        assert "--no-proxy-env" in result.stderr
        net.docker("rmi", image)
        net.docker("pull", image)
        assert f"CONNECT host.docker.internal:{port}" in proxy.asked
    finally:
        proxy.shutdown()
        for process in (registry, registry2):
            process.terminate()
            process.wait(timeout=10)


# --- the door -----------------------------------------------------------------------------

def test_with_host_access_off_containers_cannot_reach_the_host_and_the_engine_and_ports_still_work(net, host_web, host_etc_hosts):
    port, marker = host_web
    name = f"door-{random.randrange(10**9)}.test"
    with open("/etc/hosts", "a") as hosts:
        hosts.write(f"192.0.2.45 {name}\n")
    out = net.machine("set", "--host-access", "off").stdout.decode()
    assert "host access on -> off" in out
    net.machine("restart")
    # Not by name, not by the gateway's number, not through host-gateway, not from a user network.
    assert in_container(net, "nslookup host.docker.internal", check=False).returncode != 0
    assert in_container(net, f"wget -T 5 -qO- http://10.0.2.2:{port}/marker", check=False).stdout.strip() != marker
    assert in_container(net, f"wget -T 5 -qO- http://10.0.2.2:{port}/marker", check=False).returncode != 0
    assert in_container(net, f"wget -T 5 -qO- http://gw:{port}/marker", "--add-host", "gw:host-gateway", check=False).returncode != 0
    net.docker("network", "create", "closed")
    try:
        assert in_container(net, f"wget -T 5 -qO- http://10.0.2.2:{port}/marker", "--network", "closed", check=False).returncode != 0
    finally:
        net.docker("network", "rm", "closed", check=False)
    # The host's own names no longer reach containers.
    assert "192.0.2.45" not in in_container(net, f"nslookup {name}", check=False).stdout
    # The engine socket and published ports work as before.
    assert net.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    udp = free_port(socket.SOCK_DGRAM)
    net.docker("run", "-d", "--name", "udp-closed", "-p", f"{udp}:7/udp", "udp-echo")
    try:
        wait_for(lambda: forwarded(net, udp), 30, f"{udp}/udp forwarding with the door closed")
        assert echo_round_trips(udp, 20) == 0
    finally:
        net.docker("rm", "-f", "udp-closed")
    network = json.loads(net.machine("inspect").stdout)["network"]
    assert network["hostAccess"] is False and network["hostNames"] == []
