#!/usr/bin/env bash
# The README's first command: set up the host, build machine and install it for every user
# (/usr/local/bin, with shell completion, and the guest image and engine bundle that every
# account's first `up` boots), `machine up` the default machine, then use its engine from the
# host's docker CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/host-setup.sh
# install.sh also builds the guest image and engine bundle, for every account of this host.
scripts/install.sh
machine=/usr/local/bin/machine
# Now that the guest kernel is built, KVM is judged by whether it boots that kernel; host setup
# restarts libvirtd without /dev/kvm if it does not.
MACHINE_BIN=$machine scripts/host-setup.sh
echo "==> machine up"
"$machine" up
echo "==> docker, through the machine"
docker version --format 'docker client {{.Client.Version}} -> engine {{.Server.Version}} ({{.Server.Os}}/{{.Server.Arch}}) in the machine'
# No registry is reachable here: make a busybox image from Debian's busybox-static.
tar=$(python3 scripts/qemu_guest.py busybox-tar "${TMPDIR:-/tmp}/machine-quickstart")
docker import "$tar" busybox:latest >/dev/null
docker run --rm busybox echo "hello from a container in the machine"
echo
echo "machine is installed for every user; try \`machine ssh\`, \`machine ls\`, \`machine stop\`."
