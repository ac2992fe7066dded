#!/usr/bin/env bash
# The whole test suite: host setup, Swift unit tests, then the end-to-end tests that build
# the guest image and engine bundle and boot them under QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/host-setup.sh
echo "==> swift build"
# Progress lines left out. pipefail makes the build's own status the pipeline's, so a failed
# build stops here (grep finding nothing to print is no failure).
swift build --build-tests 2>&1 | { grep -vE '^\[[0-9]+/[0-9]+\]' || true; }
echo "==> unit tests (swift test)"
swift test --skip-build
echo "==> fuzzing the parsers of what the guest sends (10 s a target, one a core)"
scripts/fuzz.sh 10
echo "==> guest image and engine bundle (cached after the first build)"
.build/debug/machine image build >/dev/null
# Now that the guest kernel is built, KVM is judged by whether it boots that kernel; host setup
# restarts libvirtd without /dev/kvm if it does not.
MACHINE_BIN=.build/debug/machine scripts/host-setup.sh
echo "==> end-to-end tests (pytest, real VMs under QEMU)"
# Debian's python3, whose pytest, pexpect and docker modules host setup installs (not whichever
# python3 comes first on PATH, with whatever it happens to have).
exec /usr/bin/python3 -m pytest tests/e2e -v -rs --durations=0 --durations-min=5 "$@"
