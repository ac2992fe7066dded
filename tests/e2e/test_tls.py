"""The engine's TLS endpoint (`--tls`), docker-machine style: DOCKER_HOST=tcp://127.0.0.1:PORT
with DOCKER_CERT_PATH and DOCKER_TLS_VERIFY, reached by the docker CLI, the Python SDK and
curl with the machine's client certificate, and by nobody without it. One machine serves the
module; the tests run in file order."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import DOCKER, Up, machine_binary


@pytest.fixture(scope="module")
def tls(tmp_path_factory, cache_dir, built):
    machine = Up(tmp_path_factory.mktemp("tls-home"), cache_dir, tmp_path_factory.mktemp("tls-work"), name="tls")
    try:
        # Up without TLS first: the endpoint is then added to a running machine.
        machine.machine("up", "tls", "--no-context", "--no-mounts")
        yield machine
    finally:
        machine.machine("rm", "--force", "tls", check=False, timeout=180)


def tls_env(machine):
    """The variables `machine env --tls` prints, as a dict."""
    out = machine.machine("env", "--tls", "tls", "--shell", "bash").stdout.decode()
    return dict(re.findall(r"^export (\w+)='([^']*)'$", out, re.M))


def curl_ping(port, cert_dir=None, ca=None):
    """curl's exit status and output for /_ping over TLS, with the client certificate in
    cert_dir (none if None), trusting ca."""
    args = ["curl", "-sS", "--max-time", "20", "--cacert", str(ca)]
    if cert_dir:
        args += ["--cert", str(cert_dir / "cert.pem"), "--key", str(cert_dir / "key.pem")]
    out = subprocess.run(args + [f"https://127.0.0.1:{port}/_ping"], capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout


def stranger_certificates(folder):
    """A client certificate from a CA of its own, as another machine's would be."""
    folder.mkdir()
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=stranger CA", "-keyout", "ca-key.pem", "-out", "ca.pem")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=stranger", "-keyout", "key.pem", "-out", "client.csr")
    (folder / "ext").write_text("extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-set_serial", "7",
            "-days", "1", "-extfile", "ext", "-out", "cert.pem")
    return folder


def test_tls_added_to_a_running_machine_serves_the_cli_the_sdk_and_curl_and_no_one_else(tls):
    without = tls.machine("env", "--tls", "tls", check=False)
    assert tls.machine("regenerate-certs", "tls", check=False).returncode == 1
    assert without.returncode == 1 and b"machine up --tls tls" in without.stderr
    added = tls.machine("up", "--tls", "tls", "--no-context")
    assert b"tls has a TLS endpoint now" in added.stderr
    env = tls_env(tls)
    assert env["DOCKER_HOST"].startswith("tcp://127.0.0.1:") and env["DOCKER_TLS_VERIFY"] == "1"
    certs = env["DOCKER_CERT_PATH"]
    assert os.stat(certs).st_mode & 0o777 == 0o700 and os.stat(f"{certs}/key.pem").st_mode & 0o777 == 0o600
    port = int(env["DOCKER_HOST"].rsplit(":", 1)[1])
    listing = tls.machine("port", "ls", "tls").stdout.decode()
    assert re.search(rf"127\.0\.0\.1:{port}\s+127\.0\.0\.1:2376\s+tcp\s+engine TLS\s+forwarding", listing), listing
    # The docker CLI, through the printed commands, with no context of its own.
    script = f'eval "$({machine_binary()} env --tls tls)" && {DOCKER} version --format "{{{{.Server.Os}}}}"'
    clean = dict(tls.env, DOCKER_CONFIG=str(tls.work / "empty-docker-config"))
    out = subprocess.run(["bash", "-c", script], env=clean, capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stdout.strip()) == (0, "linux"), out.stderr
    # The Python SDK, configured by the three variables alone. (requests lets REQUESTS_CA_BUNDLE
    # or CURL_CA_BUNDLE, set on some hosts, override the SDK's ca.pem: env says so.)
    noted = tls.machine("env", "--tls", "tls").stderr.decode()
    assert ("REQUESTS_CA_BUNDLE" in noted) == ("REQUESTS_CA_BUNDLE" in os.environ or "CURL_CA_BUNDLE" in os.environ)
    sdk_env = {k: v for k, v in dict(clean, **env).items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    sdk = subprocess.run([sys.executable, "-c", "import docker; print(docker.from_env().ping())"],
                         env=sdk_env, capture_output=True, text=True, timeout=120)
    assert (sdk.returncode, sdk.stdout.strip()) == (0, "True"), sdk.stderr
    # curl with the client certificate; without one, or with another CA's, it is refused.
    assert curl_ping(port, tls.folder / "tls", ca=f"{certs}/ca.pem") == (0, "OK")
    assert curl_ping(port, None, ca=f"{certs}/ca.pem")[0] != 0
    stranger = stranger_certificates(tls.work / "stranger")
    assert curl_ping(port, stranger, ca=f"{certs}/ca.pem")[0] != 0
    # Plain HTTP to the port gets no answer from the engine.
    # The port answers (curl connects: no 7, refused, nor 28, timed out), and what answers is
    # dockerd's TLS server, which turns plain HTTP away.
    plain = subprocess.run(["curl", "-sS", "--max-time", "20", f"http://127.0.0.1:{port}/_ping"], capture_output=True, text=True)
    assert plain.returncode not in (7, 28), plain.stderr
    assert "OK" not in plain.stdout and "Client sent an HTTP request to an HTTPS server" in plain.stdout, (plain.stdout, plain.stderr)


def test_a_machine_created_with_tls_has_its_certificates_and_environment_at_once(tls):
    # No boot needed: the certificates are made at create, for the seed of its first boot.
    tls.machine("create", "born-tls", "--tls", "--no-mounts")
    try:
        env = dict(re.findall(r"^export (\w+)='([^']*)'$", tls.machine("env", "--tls", "born-tls").stdout.decode(), re.M))
        assert env["DOCKER_TLS_VERIFY"] == "1" and env["DOCKER_HOST"].startswith("tcp://127.0.0.1:")
        for name in ("ca.pem", "cert.pem", "key.pem", "server.pem", "server-key.pem"):
            assert (tls.home / "machines" / "born-tls" / "tls" / name).is_file(), name
    finally:
        tls.machine("rm", "--force", "born-tls", check=False)


def test_regenerated_certificates_work_and_the_old_client_certificate_is_refused(tls):
    certs = tls.folder / "tls"
    old = tls.work / "old-certs"
    shutil.copytree(certs, old)
    out = tls.machine("regenerate-certs", "tls")
    assert b"the old ones are refused from now on" in out.stdout
    port = int(tls_env(tls)["DOCKER_HOST"].rsplit(":", 1)[1])
    assert curl_ping(port, certs, ca=certs / "ca.pem") == (0, "OK")
    assert curl_ping(port, old, ca=certs / "ca.pem")[0] != 0


def test_the_endpoint_comes_back_after_a_restart(tls):
    tls.machine("restart", "tls")
    certs = tls.folder / "tls"
    port = int(tls_env(tls)["DOCKER_HOST"].rsplit(":", 1)[1])
    assert curl_ping(port, certs, ca=certs / "ca.pem") == (0, "OK")
    # The engine started with its TLS files from the seed: no restart to apply them.
    log = tls.machine("ssh", "tls", "--", "cat /var/log/docker.log").stdout.decode()
    assert "API listen on 127.0.0.1:2376" in log
