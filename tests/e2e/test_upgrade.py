"""`machine upgrade --suite`: a machine made on the old guest (Debian 12, Docker Engine 20.10)
moves to the new one (Debian 13, Engine 26.1) and keeps its images, volumes, networks and containers
with their restart policies; when the new engine does not come up it is booted again on the
builds it ran before, and held there.

The engine that fails is the new suite's bundle built from a copy of the recipes
(MACHINE_RECIPES) whose guest service exits at once. One machine serves the module; the tests
run in file order: the old guest's core cases (the short e2e run of the suite users can still
choose), the rollback, the upgrade that succeeds, then what only the new engine can do."""
import io
import json
import shutil
import tarfile
import time

import docker
import pytest

from conftest import ENGINE, REPO, Up, start_watcher, wait_until_answers, watched_events
from qemu_guest import busybox_image_tar

OLD, NEW = "bookworm", "trixie"


def recipe_copy(folder, note, service_edit=None):
    """The recipes (iso/, provisioning/, scripts/) copied to folder, with a comment added to
    the engine's package list so they build another bundle; service_edit(text) rewrites the
    engine's guest service."""
    for part in ("iso", "provisioning", "scripts"):
        shutil.copytree(REPO / part, folder / part, symlinks=True)
    with open(folder / "provisioning" / "packages.txt", "a") as packages:
        packages.write(f"# {note}\n")
    if service_edit:
        service = folder / "provisioning" / "guest" / "service"
        service.write_text(service_edit(service.read_text()))
    return folder


def builds_of(machine):
    return json.loads(machine.machine("inspect", machine.name).stdout)["builds"]


def engine_of(machine):
    builds = builds_of(machine)
    return builds["engine"]["version"], builds["held"]


def answers(port):
    return wait_until_answers(port, "/index.html", limit=30)[0].decode()


@pytest.fixture(scope="module")
def machine(tmp_path_factory, cache_dir, built):
    machine = Up(tmp_path_factory.mktemp("upgrade-home"), cache_dir, tmp_path_factory.mktemp("upgrade-work"), name="upg")
    machine.project = machine.work / "project"
    machine.project.mkdir()
    try:
        machine.machine("up", "upg", "--suite", OLD, "--no-context", "--mount", str(machine.project), timeout=1200)
        machine.env["DOCKER_HOST"] = f"unix://{machine.socket}"
        yield machine
    finally:
        machine.machine("rm", "--force", "upg", check=False, timeout=180)
        # The shared cache's latest builds back to the ones of this checkout's recipes, which
        # the later tests (and the accounts given a copy of the cache) start from.
        machine.machine("image", "build", "--quiet", check=False)


def test_the_old_guest_runs_engine_20_10_with_shares_volumes_networks_and_published_ports(machine):
    """The short run of the core cases on the old suite, which users can still choose (its
    restart policies: the rollback below boots it again)."""
    builds = builds_of(machine)
    assert builds["suite"] == OLD, builds
    version = json.loads(machine.docker("version", "--format", "{{json .Server}}").stdout)
    assert version["Version"].startswith(ENGINE[OLD][0]) and version["ApiVersion"] == ENGINE[OLD][1], version
    assert machine.docker("info", "--format", "{{.OperatingSystem}}").stdout.strip() == f"machine guest (Debian 12 {OLD})"
    machine.docker("import", str(busybox_image_tar(machine.work / "busybox")), "busybox:latest")
    machine.docker("volume", "create", "kept")
    machine.docker("run", "--rm", "-v", "kept:/data", "busybox", "sh", "-c", "echo before-upgrade > /data/note")
    machine.docker("network", "create", "apps")
    machine.docker("run", "-d", "--name", "always", "--restart=always", "--network", "apps", "-p", "127.0.0.1:18731:80",
                   "-v", "kept:/www", "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    machine.docker("run", "--rm", "-v", "kept:/data", "busybox", "sh", "-c", "cp /data/note /data/index.html")
    assert answers(18731) == "before-upgrade\n"
    # A container on the user network reaches the other by name (Debian 12's busybox wget crashes: ping, which the
    # image has as an applet of busybox only).
    reached = machine.docker("run", "--rm", "--network", "apps", "busybox", "busybox", "ping", "-c", "1", "-W", "5", "always", check=False)
    assert reached.returncode == 0, reached
    # A bind mount of a shared host folder, and a host edit heard by a watcher in a container.
    (machine.project / "in.txt").write_text("from the host\n")
    out = machine.docker("run", "--rm", "-v", f"{machine.project}:/src", "busybox", "sh", "-c", "cat /src/in.txt; echo back > /src/out.txt")
    assert out.stdout == "from the host\n" and (machine.project / "out.txt").read_text() == "back\n"
    watcher = start_watcher(machine, machine.project)
    try:
        (machine.project / "new.txt").write_text("one\n")
        assert watched_events(machine, watcher, 3) == ["00000100 0 new.txt", "00000002 0 new.txt", "00000008 0 new.txt"]
    finally:
        machine.docker("rm", "-f", watcher, check=False)


def test_a_new_engine_that_does_not_come_up_is_rolled_back_to_the_old_suite_and_held(machine, tmp_path, cache_dir):
    working, _ = engine_of(machine)
    # dockerd of this bundle exits at once, as a broken build would (so 10 s of waiting for it is
    # as good as the default 180: it never answers).
    broken = recipe_copy(tmp_path / "recipes", "a broken engine", service_edit=lambda text: text.replace(
        "\nrun)\n", "\nrun)\n\techo 'dockerd: broken on purpose by the upgrade test' >>/var/log/docker.log\n\tsleep 1\n\texit 1\n", 1))
    machine.env["MACHINE_RECIPES"] = str(broken)
    try:
        failed = machine.machine("upgrade", "upg", "--suite", NEW, "--no-refresh", "--engine-timeout", "10", check=False, timeout=900)
        err = failed.stderr.decode()
        assert failed.returncode == 1, err
        assert "the upgrade of upg failed" in err and "broken on purpose" in err, err
        assert f"runs its previous engine {working} again" in err, err
        # Held on the old suite's builds, and its choice of suite (made by `up --suite`) left as it was.
        assert engine_of(machine) == (working, True)
        assert builds_of(machine)["suite"] == OLD
        assert machine.config()["held"]["engine"] == working.split("-")[-1]
        assert machine.config()["suite"] == OLD
        # Other machines of the old suite start on its latest builds: those are the working ones.
        assert (cache_dir / "engine" / f"latest-{OLD}").resolve().name == working.split("-")[-1]
    finally:
        del machine.env["MACHINE_RECIPES"]
    assert machine.docker("version", "--format", "{{.Server.Version}}").stdout.startswith(ENGINE[OLD][0])
    assert answers(18731) == "before-upgrade\n"


def test_the_upgrade_to_the_new_suite_keeps_containers_volumes_and_networks(machine):
    upgraded = machine.machine("upgrade", "upg", "--suite", NEW, timeout=1200)
    out = upgraded.stdout.decode()
    builds = builds_of(machine)
    assert builds["suite"] == NEW and not builds["held"], builds
    assert f"Debian {OLD}" in out and f"Debian {NEW}" in out, out
    assert machine.config()["suite"] == NEW
    version = json.loads(machine.docker("version", "--format", "{{json .Server}}").stdout)
    assert version["Version"].startswith(ENGINE[NEW][0]) and version["ApiVersion"] == ENGINE[NEW][1], version
    assert machine.docker("info", "--format", "{{.OperatingSystem}}").stdout.strip() == f"machine guest (Debian 13 {NEW})"
    # The container came back by itself, on its network, with its volume and published port.
    state = machine.docker("inspect", "-f", "{{.State.Running}} {{.HostConfig.RestartPolicy.Name}}", "always").stdout
    assert state.split() == ["true", "always"]
    assert answers(18731) == "before-upgrade\n"
    assert "apps" in machine.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    reached = machine.docker("run", "--rm", "--network", "apps", "busybox", "busybox", "ping", "-c", "1", "-W", "5", "always", check=False)
    assert reached.returncode == 0, reached


def test_the_new_engines_features_reach_the_hosts_cli(machine):
    # A healthcheck with a start interval (Engine 25+) and an annotation (Engine 24+).
    machine.docker("run", "-d", "--name", "healthy", "--annotation", "org.example.team=machine",
                   "--health-cmd", "true", "--health-interval", "1h", "--health-start-period", "60s", "--health-start-interval", "1s",
                   "busybox", "sleep", "1000")
    deadline = time.time() + 60
    while machine.docker("inspect", "-f", "{{.State.Health.Status}}", "healthy").stdout.strip() != "healthy":
        assert time.time() < deadline, "the start interval did not check the container within 60 s"
        time.sleep(1)
    hostconfig = json.loads(machine.docker("inspect", "-f", "{{json .HostConfig}}", "healthy").stdout)
    assert hostconfig["Annotations"] == {"org.example.team": "machine"}, hostconfig
    machine.docker("rm", "-f", "healthy")
    # A BuildKit build by the engine's own builder, with a cache mount that the second build
    # finds as the first left it (its argument changed, so the step runs again).
    dockerfile = ("FROM busybox\nARG TOKEN\n"
                  "RUN --mount=type=cache,target=/cache sh -c 'echo $TOKEN >> /cache/runs; cp /cache/runs /runs'\n")
    buildkit_build(machine, dockerfile, "cached:1", {"TOKEN": "first"})
    buildkit_build(machine, dockerfile, "cached:2", {"TOKEN": "second"})
    assert machine.docker("run", "--rm", "cached:2", "cat", "/runs").stdout == "first\nsecond\n"
    assert machine.docker("run", "--rm", "cached:1", "cat", "/runs").stdout == "first\n"


def buildkit_build(machine, dockerfile, tag, buildargs):
    """`docker build` through the engine's BuildKit (API /build?version=2), the context sent as
    the request's body: the host's CLI has no buildx plugin, and the docker SDK (whose build()
    has no version) sends the same request with its low-level client."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        entry = tarfile.TarInfo("Dockerfile")
        entry.size = len(dockerfile.encode())
        tar.addfile(entry, io.BytesIO(dockerfile.encode()))
    api = docker.APIClient(base_url=f"unix://{machine.socket}", version=ENGINE[NEW][1])
    response = api._post(api._url("/build"), params={"version": "2", "t": tag, "buildargs": json.dumps(buildargs)},
                         data=context.getvalue(), headers={"Content-Type": "application/x-tar"}, stream=True)
    messages = list(api._stream_helper(response, decode=True))
    errors = [m for m in messages if "error" in m or "errorDetail" in m]
    assert not errors, errors
    # BuildKit reports progress as traces; the image it made comes last, as moby.image.id.
    assert any(m.get("id") == "moby.image.id" for m in messages), messages[-3:]
