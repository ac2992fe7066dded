#!/usr/bin/env python3
"""Writes Sources/machine/agent.order: the functions `machine agent` runs, which the linker lays
out first in the binary (lld's --symbol-ordering-file, set in Package.swift).

Why: the agent runs about 1 MB of the binary's 10 MB of code, spread all over it. The kernel maps
whole page-cache folios of a file on a fault (64 KiB to 2 MiB, however the file was read in), so
that scattered 1 MB kept 9 MiB of the binary resident in the agent. Laid out together, it keeps
what it runs and little else (docs/benchmarks.md, "The agent's code in one place").

How: boots a machine with a shared tree and a published port, runs its agent under valgrind's
callgrind, and drives it the way `bench/agent_footprint.py` measures it, plus host edits in the
share and a container coming and going with a port. The functions callgrind saw run in the binary
are the list. Run it again after changing what the agent does (a stale list costs memory, never
correctness: the linker places what it does not find as it would without the list), then
rebuild. Takes about 5 minutes; needs valgrind (installed if missing).

    scripts/agent-order.py [--output Sources/machine/agent.order]
"""
import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from qemu_guest import SharingMachine, engine_ping, folder_tree, free_port, release_machine, wait_until  # noqa: E402


def functions_run(profile, binary):
    """The names of the functions of `binary` that callgrind's `profile` saw run, in the order it
    first names them (callgrind names each function once in full, then by number)."""
    objects, names, run = {}, {}, []
    current_object = called_object = None
    for line in Path(profile).read_text(errors="replace").splitlines():
        if match := re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line):
            if match.group(3):
                objects[match.group(2)] = match.group(3)
            if match.group(1) == "ob":
                current_object = match.group(2)
            else:
                called_object = match.group(2)
        elif match := re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line):
            if match.group(3):
                # "'2" marks a recursion level, not another function.
                names[match.group(2)] = re.sub(r"'\d+$", "", match.group(3))
            owner = current_object if match.group(1) == "fn" else called_object
            if os.path.realpath(objects.get(owner, "")) == os.path.realpath(binary):
                run.append(names[match.group(2)])
    return list(dict.fromkeys(name for name in run if not name.startswith("0x")))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(REPO / "Sources" / "machine" / "agent.order"))
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        subprocess.run(["apt-get", "install", "-y", "-q", "valgrind"], check=True)
    machine = release_machine()
    work = Path(tempfile.mkdtemp(prefix="agent-order-", dir="/tmp"))
    tree = work / "tree"
    folder_tree(tree, 1000)
    order = SharingMachine(machine, work, "order", tree)
    folder, engine = order.folder, order.engine
    profile = work / "callgrind.out"
    agent = None
    try:
        print("booting a machine with a shared tree and a published port", flush=True)
        port = order.up()

        # The agent `up` started, replaced by one under callgrind (it takes over where that left).
        os.kill(int((folder / "agent.pid").read_text()), signal.SIGTERM)
        wait_until("the agent to stop", lambda: "stopped" in (folder / "agent.log").read_text().splitlines()[-1])
        print("running the agent under callgrind", flush=True)
        output = open(work / "agent.out", "w")
        agent = subprocess.Popen(["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={profile}",
                                  machine, "agent", "--connect", "qemu:///system", "order"],
                                 env=order.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        log = lambda: (work / "agent.out").read_text()  # noqa: E731
        wait_until("the agent to watch the shared tree", lambda: "watching" in log())
        wait_until("the engine through the agent", lambda: subprocess.run(
            [order.DOCKER, "-H", f"unix://{engine}", "version"], capture_output=True).returncode == 0)
        wait_until("the published port's forward", lambda: f"forward 127.0.0.1:{port}" in log())

        print("driving it: engine socket, published port, host edits, a container coming and going", flush=True)
        for _ in range(200):
            engine_ping(engine, timeout=120)
        for _ in range(100):
            order.fetch(timeout=120)
        (tree / "project1" / "new" / "deep").mkdir(parents=True)
        (tree / "project1" / "new" / "deep" / "file").write_text("x")
        (tree / "project1" / "new").rename(tree / "project2" / "moved")
        with open(tree / "project2" / "moved" / "deep" / "file", "a") as edited:
            edited.write("y")
        os.chmod(tree / "project2" / "moved" / "deep" / "file", 0o600)
        shutil.rmtree(tree / "project2" / "moved")
        (tree / "project3").rename(work / "project3")
        (work / "project3").rename(tree / "project3")
        order.docker("run", "--rm", "-v", f"{tree}:/t", "busybox", "sh", "-c", "ls /t > /dev/null && echo hello > /t/project0/x")
        second = free_port()
        order.docker("run", "-d", "--name", "second", "-p", f"{second}:80", "busybox", "sleep", "1000")
        wait_until("the second port's forward", lambda: f"forward 127.0.0.1:{second}" in log())
        order.docker("rm", "-f", "second")
        wait_until("the second port's forward to close", lambda: f"forward 127.0.0.1:{second} closed" in log())
        time.sleep(30)  # the periodic looks: the domain, the data disk
        order.machine("stop", "order")
        agent.wait(timeout=300)
    finally:
        if agent and agent.poll() is None:
            agent.kill()
        order.remove()

    names = functions_run(profile, machine)
    shutil.rmtree(work, ignore_errors=True)
    # A name the binary defines more than once (a local helper, the same in many files) would put
    # every copy first, each with the whole section it is in where a library was built without a
    # section per function: left out, the one copy that runs stays where it is.
    symbols = subprocess.run(["nm", "--defined-only", machine], check=True, capture_output=True, text=True).stdout
    defined = collections.Counter(line.split()[-1] for line in symbols.splitlines() if line.split()[1:2] and line.split()[1] in "tTwW")
    unique = [name for name in names if defined[name] == 1]
    Path(args.output).write_text(
        "# The functions `machine agent` runs, laid out first in the binary by lld (Package.swift).\n"
        "# Written by scripts/agent-order.py; run it again when the agent changes much.\n"
        + "".join(name + "\n" for name in unique))
    print(f"{args.output}: {len(unique)} functions ({len(names) - len(unique)} more left out, defined more than once)")


if __name__ == "__main__":
    main()
