#!/usr/bin/env bash
# The README's first command: set up the host, build machine, build the guest image and the
# engine bundle, then boot the image under QEMU, install the engine and use it from the host's
# docker CLI through a forwarded socket. (`machine up` will do all of this in one step.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/host-setup.sh
echo "==> swift build"
swift build 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
echo "==> machine image build"
.build/debug/machine image build | tee /tmp/machine-image-build.$$
image=$(sed -n 's/^image: *\([^ ]*\).*/\1/p' /tmp/machine-image-build.$$)
engine=$(dirname "$(sed -n 's/^engine: *\([^ ]*\).*/\1/p' /tmp/machine-image-build.$$)")
rm -f /tmp/machine-image-build.$$
echo "==> booting the image and running docker through it"
exec python3 scripts/qemu_guest.py demo "$image" "$engine"
