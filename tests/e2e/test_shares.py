"""Host folders shared into the machine (issue: shares), end to end with the real docker CLI:
bind mounts of shared folders read and write the host's files, read-only shares refuse
writes, `machine cp` never follows a symlink a guest planted, and containers restarted at
boot find their bind sources. The same checks run over virtiofs and over 9p."""
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from conftest import Up, machine_binary, start_watcher, watched_events, watcher_image
from qemu_guest import busybox_image_tar

# Spaces, quotes and unicode in the shared path, as in real home folders.
PROJECT = "proj dir 'q' ü"


@pytest.fixture(scope="module", params=["virtiofs", "9p"])
def shared(request, tmp_path_factory, cache_dir, built):
    kind = request.param
    work = tmp_path_factory.mktemp(f"shares-{kind}")
    # The machine's own folder inside a share, as ~/.machine is inside the shared home.
    machine = Up(work / PROJECT / ".machine", cache_dir, work, name="shares")
    machine.env["DOCKER_HOST"] = f"unix://{machine.socket}"
    machine.kind = kind
    machine.project = work / PROJECT
    (machine.project / "sub").mkdir(parents=True, exist_ok=True)
    (machine.project / "sub" / "in.txt").write_text("from the host\n")
    machine.readonly = work / "reference"
    machine.readonly.mkdir()
    (machine.readonly / "data.txt").write_text("read me\n")
    machine.quiet = work / "quiet"
    machine.quiet.mkdir()
    machine.machine("up", "shares", "--no-context", "--mount-type", kind,
                    "--mount", str(machine.project), "--mount", f"{machine.readonly}:/ro-data:ro",
                    "--mount", f"{machine.quiet}:/quiet:noinotify")
    machine.docker("import", str(busybox_image_tar(work / "busybox")), "busybox:latest")
    yield machine
    machine.machine("rm", "--force", "shares", check=False, timeout=180)


def run(machine, *args, check=True):
    return machine.docker("run", "--rm", *args, check=check)


def test_inspect_reports_the_shares_and_how_they_are_served(shared):
    shares = {s["guestPath"]: s for s in json.loads(shared.machine("inspect", "shares").stdout)["shares"]}
    assert shares == {
        str(shared.project): {"hostPath": str(shared.project), "guestPath": str(shared.project), "readOnly": False, "type": shared.kind,
                              "inotify": True},
        # Read-only shares are always 9p: only QEMU's 9p server refuses writes on the host.
        "/ro-data": {"hostPath": str(shared.readonly), "guestPath": "/ro-data", "readOnly": True, "type": "9p", "inotify": False},
        "/quiet": {"hostPath": str(shared.quiet), "guestPath": "/quiet", "readOnly": False, "type": shared.kind, "inotify": False},
    }


def test_a_bind_mount_under_a_share_reads_and_writes_the_hosts_files(shared):
    sub = shared.project / "sub"
    out = run(shared, "-v", f"{sub}:/src", "busybox", "sh", "-c", "cat /src/in.txt; echo from the container > /src/out.txt")
    assert out.stdout == "from the host\n"
    written = sub / "out.txt"
    assert written.read_text() == "from the container\n"
    # Owned by the user who runs machine (root here: the CI runs as root).
    assert written.stat().st_uid == os.getuid()
    # A container writing as another id: root's shares keep that id on the host (an ordinary
    # user's map it to their own; test_lifecycle_user and test_user_path check that).
    open_to_all = sub / "open"
    open_to_all.mkdir(exist_ok=True)
    open_to_all.chmod(0o777)
    run(shared, "--user", "1234:1235", "-v", f"{sub}:/src", "busybox", "sh", "-c", "echo as 1234 > /src/open/as-1234.txt")
    as_other = (open_to_all / "as-1234.txt").stat()
    assert (as_other.st_uid, as_other.st_gid) == ((1234, 1235) if os.getuid() == 0 else (os.getuid(), os.getgid())), as_other
    # A host edit shows in the next container at once.
    (sub / "in.txt").write_text("edited on the host, now longer\n")
    assert run(shared, "-v", f"{sub}:/src", "busybox", "cat", "/src/in.txt").stdout == "edited on the host, now longer\n"


def test_changes_written_to_machine_notify_reach_a_watcher_in_a_container(shared):
    """The guest half of host edits reaching watchers: lines written to the guest's
    /proc/machine-notify (machine_notify.ko) become the events a local edit raises."""
    folder = shared.project / "watched"
    folder.mkdir()
    container = start_watcher(shared, folder)
    try:
        # A file for the lines about a file (the agent raises its own three events first).
        (folder / "renamed.txt").write_text("one\n")
        assert len(watched_events(shared, container, 3)) == 3
        lines = [f"create 0 {folder}/new.txt", f"createdir 0 {folder}/sub", f"modify 0 {folder}/renamed.txt",
                 f"closewrite 0 {folder}/renamed.txt", f"movedfrom 9 {folder}/new.txt", f"movedto 9 {folder}/renamed.txt",
                 f"deletedir 0 {folder}/sub", f"attrib 0 {folder}/renamed.txt", f"nonsense 0 {folder}/x", f"delete 0 {folder}/gone/x"]
        before = shared.machine("ssh", "shares", "--", "cat /proc/machine-notify").stdout.decode().split()
        shared.machine("ssh", "shares", "--", "cat > /proc/machine-notify", input="".join(line + "\n" for line in lines).encode())
        expected = ["00000100 0 new.txt", "40000100 0 sub", "00000002 0 renamed.txt", "00000008 0 renamed.txt",
                    "00000040 9 new.txt", "00000080 9 renamed.txt", "40000200 0 sub", "00000004 0 renamed.txt"]
        assert watched_events(shared, container, 11)[3:] == expected
        # The two bad lines were counted, not raised; and a container cannot raise events.
        after = shared.machine("ssh", "shares", "--", "cat /proc/machine-notify").stdout.decode().split()
        assert int(after[3]) - int(before[3]) == 2
        refused = run(shared, "busybox", "sh", "-c", "echo create 0 /w/x > /proc/machine-notify", check=False)
        assert refused.returncode != 0 and "Operation not permitted" in refused.stderr
    finally:
        shared.docker("rm", "-f", container, check=False)


def test_host_edits_reach_a_watcher_in_a_container_as_local_edits_would(shared):
    """What a hot-reloading dev server hears: the host's edits, as the events the same edits
    made in the guest would raise, including an editor's save through a temporary file."""
    folder = shared.project / "edited"
    folder.mkdir()
    (folder / "app.js").write_text("v1\n")
    container = start_watcher(shared, folder)
    try:
        # Each step waits for its events: a file renamed before its write's line reaches the
        # guest has no inode there to raise the write on (the rename still tells the watcher).
        (folder / "new.txt").write_text("one\n")
        assert len(watched_events(shared, container, 3)) == 3
        (folder / "sub").mkdir()
        (folder / "new.txt").rename(folder / "renamed.txt")
        (folder / "sub").rmdir()
        (folder / "renamed.txt").unlink()
        assert len(watched_events(shared, container, 8)) == 8
        # An editor's save: write a temporary file, rename it over the original.
        (folder / ".app.js.swp").write_text("v2\n")
        assert len(watched_events(shared, container, 11)) == 11
        os.replace(folder / ".app.js.swp", folder / "app.js")
        events = watched_events(shared, container, 13)
        cookies = {int(e.split()[1]) for e in events if e.split()[1] != "0"}
        assert len(cookies) == 2, events  # one per rename, shared by its two halves
        assert [re.sub(r" [1-9][0-9]* ", " C ", e) for e in events] == [
            "00000100 0 new.txt", "00000002 0 new.txt", "00000008 0 new.txt", "40000100 0 sub",
            "00000040 C new.txt", "00000080 C renamed.txt", "40000200 0 sub", "00000200 0 renamed.txt",
            "00000100 0 .app.js.swp", "00000002 0 .app.js.swp", "00000008 0 .app.js.swp",
            "00000040 C .app.js.swp", "00000080 C app.js"]
        # And the container reads what the host wrote.
        assert run(shared, "-v", f"{folder}:/w", "busybox", "cat", "/w/app.js").stdout == "v2\n"
        # A change another container makes is heard. Over virtiofs it is heard once: the host's
        # copy of it is not raised again. Over 9p every lookup makes a new inode, so the other
        # container's own events land on an inode nobody watches, and the host's copy is what
        # the watcher hears (as often as the host saw it).
        run(shared, "-v", f"{folder}:/w", "busybox", "sh", "-c", "echo from the guest > /w/guest.txt")
        time.sleep(3)
        events = watched_events(shared, container, 0, timeout=0)
        for mask in ("00000100", "00000002", "00000008"):
            heard = events.count(f"{mask} 0 guest.txt")
            assert heard == 1 if shared.kind == "virtiofs" else heard >= 1, "\n".join(events)
        if shared.kind == "virtiofs":
            assert "echoes 0\n" not in shared.machine("ssh", "shares", "--", "cat /proc/machine-notify").stdout.decode()
        log = (shared.home / "machines" / "shares" / "agent.log").read_text()
        assert "for host edits" in log and "watching" in log
    finally:
        shared.docker("rm", "-f", container, check=False)


def test_a_compose_service_with_a_watcher_restarts_on_a_host_edit(shared):
    """The dev loop hot reload is for: a compose v1 service bind-mounts its source, a watcher
    in it ends the process on a change (as nodemon restarts one), and `restart: always` runs
    it again on the edited file."""
    app = shared.project / "app"
    app.mkdir()
    (app / "server.js").write_text("v1\n")
    watcher_image(shared)
    rootfs = shared.work / "devloop.tar"
    shutil.copy(busybox_image_tar(shared.work / "busybox-devloop"), rootfs)
    with tarfile.open(rootfs, "a") as tar:
        tar.add(shared.work / "watcher" / "bin" / "watch", arcname="bin/watch")
    shared.docker("import", str(rootfs), "devloop:1")
    (app / "docker-compose.yml").write_text(
        'version: "2"\n'
        "services:\n"
        "  web:\n"
        "    image: devloop:1\n"
        "    restart: always\n"
        "    volumes: [\"./:/src\"]\n"
        # The service's process ends at the first change to server.js, as nodemon ends its
        # child (the shell is the container's init: when it exits, the watcher goes with it),
        # and like nodemon it lets the burst of events one save makes pass first (a truncate and
        # a write are two): one that reached the next container would restart it once more. It
        # waits 5 s: in a full run on a loaded host the second came more than 2 s after the first.
        "    command: [\"sh\", \"-c\", \"echo serving $$(cat /src/server.js); /bin/watch /src >/events &"
        " until busybox grep -q ' server.js$$' /events 2>/dev/null; do busybox usleep 100000; done; busybox sleep 5\"]\n")
    compose = ["docker-compose", "-p", "devloop", "-f", str(app / "docker-compose.yml")]

    def logs():
        # docker-compose (v1) `logs` once waited for ever on a container's log stream in a full
        # run (its other requests answered; cause not found): asked again, as a user would.
        try:
            return subprocess.run(compose + ["logs", "--no-color"], env=shared.env, capture_output=True, text=True,
                                  timeout=30).stdout
        except subprocess.TimeoutExpired:
            return ""

    def wait_for(text):
        deadline = time.time() + 90
        while text not in logs():
            assert time.time() < deadline, logs()
            time.sleep(0.5)

    up = subprocess.run(compose + ["up", "-d"], env=shared.env, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        wait_for("serving v1")
        time.sleep(2)  # the watcher is watching
        (app / "server.js").write_text("v2\n")
        wait_for("serving v2")
        container = subprocess.run(compose + ["ps", "-q", "web"], env=shared.env, capture_output=True, text=True).stdout.strip()
        assert shared.docker("inspect", "-f", "{{.RestartCount}}", container).stdout.strip() == "1"
    finally:
        subprocess.run(compose + ["down"], env=shared.env, capture_output=True, timeout=300)


def test_a_share_mounted_with_noinotify_raises_no_events_for_host_edits(shared):
    container = start_watcher(shared, "/quiet")  # its path in the guest
    try:
        (shared.quiet / "big.log").write_text("a line nobody watches\n")
        time.sleep(3)
        assert watched_events(shared, container, 0, timeout=0) == []
        # The share itself works: the container sees the file, it only heard nothing of it.
        assert run(shared, "-v", "/quiet:/w", "busybox", "cat", "/w/big.log").stdout == "a line nobody watches\n"
    finally:
        shared.docker("rm", "-f", container, check=False)


def test_the_users_private_files_are_readable_and_writable_by_root_containers(shared):
    private = shared.project / "private.txt"
    private.write_text("mine\n")
    private.chmod(0o600)
    out = run(shared, "-v", f"{shared.project}:/p", "busybox", "sh", "-c", "cat /p/private.txt; echo appended >> /p/private.txt")
    assert out.stdout == "mine\n"
    assert private.read_text() == "mine\nappended\n"
    assert private.stat().st_mode & 0o777 == 0o600


def test_a_read_only_share_refuses_writes_even_from_guest_root(shared):
    result = run(shared, "-v", "/ro-data:/data", "busybox", "sh", "-c", "cat /data/data.txt; echo x > /data/new.txt", check=False)
    assert result.stdout == "read me\n"
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    # Root in the guest remounting it read-write still cannot write: QEMU refuses on the host.
    guest = shared.machine("ssh", "shares", "--", "mount -o remount,rw /ro-data; echo x > /ro-data/new.txt", check=False)
    assert guest.returncode != 0
    assert sorted(p.name for p in shared.readonly.iterdir()) == ["data.txt"]


def test_machine_cp_never_follows_a_symlink_the_guest_planted(shared):
    passwd = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    run(shared, "-v", f"{shared.project}:/p", "busybox", "sh", "-c",
        "ln -s /etc/passwd /p/evil && ln -s /etc /p/etcdir && ln -s /etc/shadow /p/leak")
    assert (shared.project / "evil").is_symlink()
    shared.machine("ssh", "shares", "--", "echo from the guest > /tmp/payload")
    # As a destination, the planted link is replaced by the copy, never written through.
    shared.machine("cp", "shares:/tmp/payload", str(shared.project / "evil"))
    assert not (shared.project / "evil").is_symlink()
    assert (shared.project / "evil").read_text() == "from the guest\n"
    # A path through a planted folder link is refused.
    refused = shared.machine("cp", "shares:/tmp/payload", str(shared.project / "etcdir" / "passwd"), check=False)
    assert refused.returncode != 0
    assert b"cannot follow the symlink" in refused.stderr and b"give the real path" in refused.stderr
    assert hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest() == passwd
    # As a source, a planted link is refused: /etc/shadow never leaves the host.
    leak = shared.machine("cp", str(shared.project / "leak"), "shares:/tmp/leak", check=False)
    assert leak.returncode != 0
    assert b"symlink inside a folder shared" in leak.stderr
    assert shared.machine("ssh", "shares", "--", "test -e /tmp/leak", check=False).returncode == 1


def test_machine_state_inside_a_share_is_hidden_from_the_guest(shared):
    # MACHINE_HOME lies inside the shared project folder: the guest and its containers see an
    # empty folder there, not the machine's SSH key and disk.
    assert (shared.home / "machines" / "shares" / "id_ed25519").exists()
    listing = run(shared, "-v", f"{shared.project}:/p", "busybox", "ls", "-A", "/p/.machine").stdout
    assert listing == ""
    assert shared.machine("ssh", "shares", "--", f"ls -A {shlex.quote(str(shared.home))}").stdout == b""


def test_a_config_rewritten_from_inside_the_guest_is_refused_until_accepted_or_restored(shared):
    # Guest root can uncover the machine's folder in the share and rewrite its config, say to
    # share the host's / at the next boot. The host notices before it obeys.
    config = shared.folder / "config.json"
    before = config.read_text()
    shared.machine("ssh", "shares", "--",
                   f"umount {shlex.quote(str(shared.home))} && sed -i"
                   """ 's#"mounts" : \\[#"mounts" : [ { "guestPath" : "/host", "hostPath" : "/", "readOnly" : false },#'"""
                   f" {shlex.quote(str(config))}")
    assert '"hostPath" : "/"' in config.read_text()
    for verb in (["start", "shares"], ["port", "add", "shares", "18123:80"]):
        refused = shared.machine(*verb, check=False)
        assert refused.returncode == 1, verb
        message = refused.stderr.decode()
        assert 'was changed, and not by machine: mounts added {"guestPath":"/host","hostPath":"/","readOnly":false}' in message
        assert "--accept-config" in message and "--restore-config" in message
    restored = shared.machine("start", "shares", "--restore-config")
    assert b"put back the config of shares" in restored.stderr
    assert json.loads(config.read_text()) == json.loads(before)
    assert shared.machine("start", "shares").returncode == 0
    # An edit the user made by hand is theirs to take: refused once, taken with
    # --accept-config, and trusted from then on.
    edited = json.loads(before)
    edited["memoryMiB"] += 256
    config.write_text(json.dumps(edited))
    assert shared.machine("start", "shares", check=False).returncode == 1
    taken = shared.machine("start", "shares", "--accept-config")
    assert f"took the config of shares as it is now: memoryMiB {edited['memoryMiB'] - 256} -> {edited['memoryMiB']}".encode() in taken.stderr, taken.stderr
    assert json.loads(shared.machine("inspect", "shares").stdout)["config"]["memoryMiB"] == edited["memoryMiB"]
    assert shared.machine("port", "ls", "shares").returncode == 0
    shared.machine("set", "shares", "--memory", f"{edited['memoryMiB'] - 256}M")


def test_restart_always_container_gets_its_mount_back_and_new_shares_apply_at_restart(shared):
    extra = shared.work / "added later"
    extra.mkdir()
    (extra / "note.txt").write_text("new share\n")
    shared.docker("run", "-d", "--name", "keeper", "--restart=always", "-v", f"{shared.project}/sub:/src",
                  "busybox", "sh", "-c", "sleep 100000")
    changed = shared.machine("up", "shares", "--no-context", "--mount-type", shared.kind, "--mount", str(shared.project),
                             "--mount", f"{shared.readonly}:/ro-data:ro", "--mount", str(extra))
    assert b"take effect at its next boot" in changed.stderr
    assert shared.machine("ssh", "shares", "--", f"test -e {shlex.quote(str(extra / 'note.txt'))}", check=False).returncode == 1
    shared.machine("restart", "shares")
    deadline = time.monotonic() + 60
    while shared.docker("inspect", "-f", "{{.State.Running}}", "keeper", check=False).stdout.strip() != "true":
        assert time.monotonic() < deadline, "the --restart=always container did not come back"
        time.sleep(1)
    # Its bind source is the share, mounted before the engine started: the host's file.
    assert shared.docker("exec", "keeper", "cat", "/src/in.txt").stdout.startswith("edited on the host")
    assert run(shared, "-v", f"{extra}:/x", "busybox", "cat", "/x/note.txt").stdout == "new share\n"
    shared.docker("rm", "-f", "keeper")


def test_bad_mounts_are_refused_at_create_with_the_reason(tmp_path, cache_dir):
    env = dict(os.environ, MACHINE_HOME=str(tmp_path / "home"), MACHINE_CACHE=str(cache_dir))
    (tmp_path / "file").write_text("")
    cases = {
        str(tmp_path / "missing"): "cannot share",
        str(tmp_path / "file"): "not a folder",
        f"{tmp_path}:/etc": "the guest's own files are there",
        f"{tmp_path}:relative": "must be absolute",
        f"{tmp_path}:/a:/b": "invalid --mount",
        str(tmp_path / "home"): "where machine keeps its SSH keys",
    }
    (tmp_path / "home").mkdir()
    for spec, reason in cases.items():
        result = subprocess.run([str(machine_binary()), "create", "bad", "--mount", spec], env=env, capture_output=True, text=True)
        assert result.returncode == 64, (spec, result.stderr)
        assert reason in result.stderr, (spec, result.stderr)
    assert not (tmp_path / "home" / "machines" / "bad").exists()
