#!/usr/bin/env bash
# Sets up a Debian 12 host for machine: the Debian packages it builds and runs with, and
# libvirtd/virtlogd started when no service manager runs them. Safe to run again: it only
# installs what is missing and starts what is not running.
set -euo pipefail

packages=(
	qemu-system-x86 qemu-utils          # the hypervisor and disk images
	libvirt-daemon-system libvirt-clients libvirt-dev   # libvirt daemon, virsh, C API headers
	libxml2-utils                       # xmllint, which virt-xml-validate runs (tests of the domain definition)
	libssh2-1-dev                       # libssh2 C API headers
	xorriso                             # bootable ISO and seed (config drive) images
	uidmap                              # newuidmap/newgidmap: virtiofs for ordinary users' machines
	apt dpkg debian-archive-keyring binutils cpio lz4 xz-utils kmod patchelf e2fsprogs squashfs-tools  # image and engine bundle recipes (the keyring signs their own apt roots; mke2fs: the engine disk; mksquashfs: the emulators)
	gcc-12 libc6-dev make               # the guest's machine_notify.ko (against its kernel's headers) and the engine's static runc-sealed
	openssh-client openssh-server       # ssh/scp for tests, a local sshd for the SSH wrapper's tests
	curl ca-certificates                # tests and benchmarks
	python3 python3-pytest python3-pexpect python3-docker   # end-to-end tests (scripts/test.sh runs /usr/bin/python3)
	docker-compose                      # compose v1, in the end-to-end test of a watcher's dev loop
	dnsmasq-base docker-registry        # a resolver and a registry on the host's loopback (network tests)
	zsh fish tcsh                       # tests of `machine env` in each shell
	dpkg-dev lintian                    # the Debian package (scripts/package.sh: dpkg-shlibdeps) and its test
)

if [ "$(id -u)" -ne 0 ]; then
	echo "error: host setup installs Debian packages and starts libvirtd, so it needs root" >&2
	echo "hint: run it as root (sudo scripts/host-setup.sh); machine itself runs as any user" >&2
	exit 1
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "==> installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	# The recipes read apt's package lists; make sure they exist on a fresh machine.
	if [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial)" ]; then
		apt-get update -qq
	fi
fi

# The docker CLI that talks to the machines: the host's own if it has one; otherwise the client
# from Debian's docker.io package (its daemon is not installed: engines run in machines).
if ! command -v docker >/dev/null 2>&1 && [ ! -x /usr/local/bin/docker ]; then
	echo "==> installing the docker CLI from Debian's docker.io package into /usr/local/bin"
	cli=$(mktemp -d)
	(cd "$cli" && apt-get download -qq -o APT::Sandbox::User=root docker.io >/dev/null && dpkg-deb -x docker.io_*.deb root)
	install -m 0755 "$cli/root/usr/bin/docker" /usr/local/bin/docker
	rm -rf "$cli"
fi

# Ordinary users' machines get virtiofs through a user namespace with the user's subordinate ids
# (UserVirtiofsd). useradd gives new accounts a range only where these files exist.
for file in /etc/subuid /etc/subgid; do
	[ -e "$file" ] || install -m 0644 /dev/null "$file"
done
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && ! grep -q "^$SUDO_USER:" /etc/subuid; then
	echo "note: $SUDO_USER has no subordinate ids, so their machines share folders with 9p, not virtiofs;" \
		"give them a free range: usermod --add-subuids START-END --add-subgids START-END $SUDO_USER" >&2
fi

# libvirtd and virtlogd, started where no service manager runs them.
"$(dirname "$0")/host-daemons.sh"
# sshd (for the SSH tests) refuses to start without its privilege-separation folder.
mkdir -p /run/sshd
echo "==> host ready: $(qemu-system-x86_64 --version | head -1); libvirt $(virsh -c qemu:///system version --daemon 2>/dev/null | sed -n 's/^Running against daemon: //p' | head -1)"
