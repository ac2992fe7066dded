"""`machine upgrade`: the machine restarted onto a newer image and engine keeps its volumes
and its containers with their restart policies; when the new engine does not come up it is
booted again on the builds it ran before, and held there.

The mirror cannot be made to publish a newer docker.io for a test, so a copy of the recipes
(MACHINE_RECIPES) stands in for "newer": a changed recipe builds a new engine bundle as new
packages would. One machine serves the module; the tests run in file order."""
import json
import shutil

import pytest

from conftest import REPO, Up
from qemu_guest import busybox_image_tar


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


def engine_of(machine):
    builds = json.loads(machine.machine("inspect", machine.name).stdout)["builds"]
    return builds["engine"]["version"], builds["held"]


@pytest.fixture(scope="module")
def machine(tmp_path_factory, cache_dir, built):
    machine = Up(tmp_path_factory.mktemp("upgrade-home"), cache_dir, tmp_path_factory.mktemp("upgrade-work"), name="upg")
    try:
        machine.machine("up", "upg", "--no-context", "--no-mounts")
        machine.env["DOCKER_HOST"] = f"unix://{machine.socket}"
        yield machine
    finally:
        machine.machine("rm", "--force", "upg", check=False, timeout=180)
        # The shared cache's latest builds back to the ones of this checkout's recipes, which
        # the later tests (and the accounts given a copy of the cache) start from.
        machine.machine("image", "build", "--quiet", check=False)


def test_an_upgrade_keeps_volumes_and_restarts_containers_with_restart_always(machine, tmp_path):
    machine.docker("import", str(busybox_image_tar(machine.work / "busybox")), "busybox:latest")
    machine.docker("volume", "create", "kept")
    machine.docker("run", "--rm", "-v", "kept:/data", "busybox", "sh", "-c", "echo before-upgrade > /data/note")
    machine.docker("run", "-d", "--name", "always", "--restart=always", "busybox", "sleep", "100000")
    before, held = engine_of(machine)
    assert not held

    newer = recipe_copy(tmp_path / "recipes", "a newer engine")
    machine.env["MACHINE_RECIPES"] = str(newer)
    try:
        upgraded = machine.machine("upgrade", "upg")
    finally:
        del machine.env["MACHINE_RECIPES"]
    out = upgraded.stdout.decode()
    after, held = engine_of(machine)
    assert after != before and not held
    # Old and new are named before the restart, and the outcome after it.
    assert before.split("-")[-1] in out and after.split("-")[-1] in out, out
    assert "upg upgraded: engine " + after in out, out
    assert machine.docker("run", "--rm", "-v", "kept:/data", "busybox", "cat", "/data/note").stdout == "before-upgrade\n"
    state = machine.docker("inspect", "-f", "{{.State.Running}} {{.HostConfig.RestartPolicy.Name}}", "always").stdout
    assert state.split() == ["true", "always"]


def test_an_engine_that_does_not_come_up_is_rolled_back_and_held(machine, tmp_path, cache_dir):
    working, _ = engine_of(machine)
    # dockerd of this bundle exits at once, as a broken build would.
    broken = recipe_copy(tmp_path / "recipes", "a broken engine", service_edit=lambda text: text.replace(
        "\nrun)\n", "\nrun)\n\techo 'dockerd: broken on purpose by the upgrade test' >>/var/log/docker.log\n\tsleep 1\n\texit 1\n", 1))
    machine.env["MACHINE_RECIPES"] = str(broken)
    try:
        failed = machine.machine("upgrade", "upg", "--no-refresh", "--engine-timeout", "25", check=False, timeout=900)
        err = failed.stderr.decode()
        assert failed.returncode == 1, err
        assert "the upgrade of upg failed" in err and "broken on purpose" in err, err
        assert f"runs its previous engine {working} again" in err, err
        # Held: the broken bundle is still the latest, and the start after the rollback booted
        # the working one (a later start reads the same hold).
        assert engine_of(machine) == (working, True)
        assert machine.config()["held"]["engine"] == working.split("-")[-1]
        # Other machines start on the latest builds: those point at the working ones again.
        assert (cache_dir / "engine" / "latest").resolve().name == working.split("-")[-1]
    finally:
        del machine.env["MACHINE_RECIPES"]
    assert machine.docker("run", "--rm", "-v", "kept:/data", "busybox", "cat", "/data/note").stdout == "before-upgrade\n"
    assert machine.docker("inspect", "-f", "{{.State.Running}}", "always").stdout.strip() == "true"
