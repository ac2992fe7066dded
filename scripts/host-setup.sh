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

# Which accelerator machines get here, as `machine host-check` decides it (KVM only if it boots
# the real guest kernel). Before machine is built, its first step: a 64 KiB firmware whose reset
# vector writes to QEMU's isa-debug-exit port, so QEMU exits 67 if the CPU really ran it.
repo=$(cd "$(dirname "$0")/.." && pwd)
machine_bin=""
for candidate in "${MACHINE_BIN:-}" "$repo/.build/release/machine" "$repo/.build/debug/machine"; do
	if [ -n "$candidate" ] && [ -x "$candidate" ]; then machine_bin=$candidate; break; fi
done
kvm_runs_guests() {
	[ -e /dev/kvm ] || return 1
	if [ -n "$machine_bin" ]; then
		[ "$("$machine_bin" host-check --print-accelerator 2>/dev/null)" = kvm ]
		return
	fi
	local fw rc
	fw=$(mktemp)
	python3 -c "import sys; d = bytearray(b'\xf4' * 65536); d[0xfff0:0xfff5] = b'\xb0\x21\xe6\xf4\xf4'; open(sys.argv[1], 'wb').write(d)" "$fw"
	rc=0
	(timeout 10 qemu-system-x86_64 -accel kvm -cpu host -machine pc -nodefaults -display none -bios "$fw" \
		-device isa-debug-exit,iobase=0xf4,iosize=0x01) >/dev/null 2>&1 || rc=$?
	rm -f "$fw"
	[ "$rc" -eq 67 ]
}

# The running libvirtd's pid. Not a zombie: with no init to reap it at once, a libvirtd that
# exited can linger as one, and was taken for a running daemon.
libvirtd_pid() {
	ps -C libvirtd -o pid=,stat= | awk '$2 !~ /^Z/ { print $1; found = 1; exit } END { exit !found }'
}

# Whether the running libvirtd sees the real /dev/kvm rather than start_libvirtd's stand-in.
# Where KVM does not run guests, libvirt's QEMU capabilities then never agree with what it
# finds of /dev/kvm, and it re-probes QEMU at every domain definition and capabilities query
# (34 s each on one host; 4-8 s on another, where /dev/kvm is root's alone, 0600, and a check
# of whether libvirt-qemu could open it said no while libvirt still re-probed).
libvirtd_sees_kvm() {
	local pid dev
	pid=$(libvirtd_pid) || return 1
	dev=/proc/$pid/root/dev/kvm
	[ -e "$dev" ] || return 1
	# The stand-in is a character device with /dev/null's numbers (1:3) that nobody may open.
	[ "$(stat -L -c '%t:%T' "$dev")" != "1:3" ]
}

start_libvirtd() {
	if [ -e /dev/kvm ] && ! kvm_runs_guests; then
		# KVM is there but cannot run our guest: give libvirtd a private /dev/kvm that nobody
		# may open, so libvirt sees no KVM and keeps its capabilities. It must stay a character
		# device (libvirt copies it into each QEMU's own /dev, and fails on a plain file), and
		# must not be /dev/null itself: libvirt could open that, and would then re-probe QEMU at
		# every definition (34 s each here).
		echo "==> /dev/kvm does not run guests here: starting libvirtd without it (TCG only)"
		rm -f /run/machine-no-kvm
		mknod -m 000 /run/machine-no-kvm c 1 3
		unshare -m --propagation private sh -c 'mount --bind /run/machine-no-kvm /dev/kvm && exec libvirtd -d'
	else
		libvirtd -d
	fi
}

# With systemd, the packages' units run the daemons; without it (containers, CI), start them.
if [ ! -d /run/systemd/system ]; then
	mkdir -p /run/libvirt /var/run/libvirt
	pgrep -x virtlogd >/dev/null || virtlogd -d
	# A libvirtd that is still shutting down would be taken for a running one.
	if libvirtd_pid >/dev/null && [ ! -S /var/run/libvirt/libvirt-sock ]; then
		for _ in $(seq 300); do libvirtd_pid >/dev/null || break; sleep 0.1; done
	fi
	if libvirtd_pid >/dev/null && libvirtd_sees_kvm && ! kvm_runs_guests; then
		# Started before KVM was known not to run guests (or by an older setup). Running
		# domains keep running: libvirtd reconnects to their QEMUs when it comes back.
		echo "==> libvirtd can open a /dev/kvm that does not run guests here: restarting it without it"
		pkill -x libvirtd
		# Its shutdown took over 10 s on one host.
		for _ in $(seq 300); do libvirtd_pid >/dev/null || break; sleep 0.1; done
	fi
	libvirtd_pid >/dev/null || start_libvirtd
	for _ in $(seq 100); do
		[ -S /var/run/libvirt/libvirt-sock ] && break
		sleep 0.1
	done
	if [ ! -S /var/run/libvirt/libvirt-sock ]; then
		echo "error: libvirtd did not start (no /var/run/libvirt/libvirt-sock)" >&2
		echo "hint: see /var/log/libvirt/libvirtd.log, or run 'libvirtd' in a terminal to read its error" >&2
		exit 1
	fi
fi
# sshd (for the SSH tests) refuses to start without its privilege-separation folder.
mkdir -p /run/sshd
echo "==> host ready: $(qemu-system-x86_64 --version | head -1); libvirt $(virsh -c qemu:///system version --daemon 2>/dev/null | sed -n 's/^Running against daemon: //p' | head -1)"
