#!/usr/bin/env bash
# The README's first command: set up the host, build machine's Debian package (the release
# binary, the guest image and engine every account's first `up` boots, the man page) and install
# it with apt, `machine up` the default machine, then use its engine from the host's docker CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/host-setup.sh
deb=$(scripts/package.sh)
echo "==> apt-get install $deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" | { grep -E '^(Setting up|machine:|==>)' || true; }
machine=/usr/bin/machine
"$machine" --version >/dev/null
echo "==> machine up"
"$machine" up
echo "==> docker, through the machine"
docker version --format 'docker client {{.Client.Version}} -> engine {{.Server.Version}} ({{.Server.Os}}/{{.Server.Arch}}) in the machine'
# No registry is reachable here: make a busybox image from Debian's busybox-static.
tar=$(python3 scripts/qemu_guest.py busybox-tar "${TMPDIR:-/tmp}/machine-quickstart")
docker import "$tar" busybox:latest >/dev/null
docker run --rm busybox echo "hello from a container in the machine"
echo
echo "machine is installed for every user ($deb); try \`machine ssh\`, \`machine ls\`, \`man machine\`."
