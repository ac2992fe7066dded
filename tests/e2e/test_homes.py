"""A machine answers only to its own home: two MACHINE_HOMEs with a machine of the same name
side by side, neither sees nor touches the other's; a domain made before domain names carried
the home's id is adopted at its next start; one of another home never is."""
import json
import re
import subprocess

import pytest

from conftest import Up


def virsh(*args, check=True, input=None):
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True, text=True, check=check,
                          timeout=60, input=input)


def domains():
    return set(virsh("list", "--all", "--name").stdout.split())


def state(domain):
    return virsh("domstate", domain).stdout.strip()


@pytest.fixture
def homes(tmp_path, cache_dir, built):
    made = [Up(tmp_path / f"home{i}", cache_dir, tmp_path) for i in (1, 2)]
    yield made
    for m in made:
        m.machine("rm", "--force", "default", check=False, timeout=180)


def domain_of(m):
    return json.loads(m.machine("inspect").stdout)["domain"]


def legacy_copy(domain):
    """The domain as `machine` defined it before names carried the home's id: no owner metadata."""
    xml = virsh("dumpxml", domain).stdout
    xml = re.sub(r"<uuid>.*?</uuid>", "", xml)
    xml = re.sub(r"<metadata>.*?</metadata>", "", xml, flags=re.S)
    return xml.replace(f"<name>{domain}</name>", "<name>machine-default</name>")


def test_a_domain_from_before_is_adopted_and_another_homes_is_left_alone(homes, tmp_path):
    first, second = homes
    first.machine("create", "--no-mounts")
    first.machine("start")
    first.machine("stop")
    domain = domain_of(first)
    legacy = tmp_path / "legacy.xml"
    legacy.write_text(legacy_copy(domain))
    virsh("undefine", domain)
    virsh("define", str(legacy))
    try:
        # Another home's machine of the same name does not take the old domain for its own.
        second.machine("create", "--no-mounts")
        assert second.machine("status").stdout.decode().strip() == "stopped"
        second.machine("rm", "--force", "default")
        assert "machine-default" in domains()
        # Its own home finds it, and the next start moves it to the new name.
        assert first.machine("inspect").returncode == 0
        assert domain_of(first) == "machine-default"
        first.machine("start")
        assert "machine-default" not in domains()
        assert state(domain) == "running"
        assert first.machine("ssh", "--", "hostname").stdout.decode().strip() == "default"
    finally:
        virsh("destroy", "machine-default", check=False)
        virsh("undefine", "machine-default", check=False)


def test_a_domain_claimed_by_another_home_is_refused_with_its_owner(homes, tmp_path):
    first, _ = homes
    first.machine("create", "--no-mounts")
    domain = domain_of(first)
    # A domain of our name whose metadata names another home (a copied MACHINE_HOME, say).
    xml = (f"<domain type='qemu'><name>{domain}</name><memory unit='MiB'>64</memory>"
           "<metadata><machine:owner xmlns:machine='https://machine.invalid/xmlns/domain/1'>"
           "<machine:home>/somewhere/else</machine:home><machine:name>default</machine:name></machine:owner></metadata>"
           "<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>")
    path = tmp_path / "other.xml"
    path.write_text(xml)
    virsh("define", str(path))
    try:
        for verb in (["status"], ["start"], ["stop"], ["rm", "--force", "default"]):
            result = first.machine(*verb, check=False)
            assert result.returncode == 1, verb
            assert "MACHINE_HOME=/somewhere/else" in result.stderr.decode(), (verb, result.stderr)
        assert domain in domains()
    finally:
        virsh("undefine", domain, check=False)


def test_two_homes_with_a_default_each_never_touch_each_other_or_their_docker_contexts(homes, tmp_path):
    """Two homes with a `default` each and one docker CLI config (the user's): each home's
    default is its own domain, which the other's status, stop, up and rm never touch, and
    neither home's `up` or `rm` takes the other's context away, in either order."""
    first, second = homes
    shared_config = tmp_path / "docker-config"
    for m in homes:
        m.env["DOCKER_CONFIG"] = str(shared_config)

    def contexts():
        return {c["Name"]: c["DockerEndpoint"] for c in
                map(json.loads, first.docker("context", "ls", "--format", "{{json .}}").stdout.splitlines())}

    def engine_through(context):
        return first.docker("--context", context, "info", "--format", "{{.Name}}").stdout.strip()

    first.machine("up", "--no-mounts")
    # The second home's default is its own, stopped machine.
    second.machine("create", "--no-mounts")
    ours, their_domain = domain_of(first), domain_of(second)
    assert ours != their_domain and re.fullmatch(r"machine-default-[0-9a-f]{8}", ours), (ours, their_domain)
    assert second.machine("status").stdout.decode().strip() == "stopped"
    assert second.machine("stop").returncode == 0
    assert state(ours) == "running"
    second.machine("up", "--no-mounts")
    assert state(ours) == "running" and state(their_domain) == "running"
    made = contexts()
    assert made["machine-default"] == f"unix://{first.socket}", made
    [theirs] = [name for name, endpoint in made.items() if endpoint == f"unix://{second.socket}"]
    assert theirs != "machine-default"
    assert second.docker("context", "show").stdout.strip() == theirs
    assert engine_through("machine-default") == engine_through(theirs) == "default"

    # The second home's rm leaves the first's machine and context alone, and docker at `default`.
    second.machine("rm", "--force", "default")
    assert their_domain not in domains()
    assert state(ours) == "running" and first.machine("status").stdout.decode().strip() == "running"
    ls = first.machine("ls").stdout.decode()
    assert len([line for line in ls.splitlines() if line.startswith("default ")]) == 1, ls
    assert theirs not in contexts()
    assert first.docker("context", "show").stdout.strip() == "default"
    first.machine("up", "--no-mounts")
    assert first.docker("version", "--format", "{{.Server.Version}}").returncode == 0

    # The other order: the first home's rm leaves the second's context, and the second's docker, working.
    second.machine("up", "--no-mounts")
    assert second.docker("context", "show").stdout.strip() == theirs
    first.machine("rm", "--force", "default")
    assert "machine-default" not in contexts()
    assert second.docker("context", "show").stdout.strip() == theirs
    assert second.docker("version", "--format", "{{.Server.Version}}").returncode == 0

    # The current context removed behind machine's back (a tool cleaned the CLI's store):
    # docker fails until `start` brings the context back.
    for meta in (shared_config / "contexts").rglob("meta.json"):
        meta.unlink()
    broken = second.docker("version", check=False)
    assert broken.returncode != 0 and "not found" in broken.stderr, broken.stderr
    started = second.machine("start")
    assert f"docker context {theirs} was missing" in started.stderr.decode(), started.stderr
    assert second.docker("version", "--format", "{{.Server.Version}}").returncode == 0

    # rm of the current machine leaves the docker CLI at its own default.
    second.machine("rm", "--force", "default")
    assert second.docker("context", "show").stdout.strip() == "default"
    assert "machine-default" not in contexts() and theirs not in contexts()
