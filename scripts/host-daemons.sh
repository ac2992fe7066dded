#!/usr/bin/env bash
# Starts libvirtd and virtlogd where no service manager runs them (containers, CI, hosts without
# systemd), and keeps a /dev/kvm that cannot run machine's guests away from libvirtd. Safe to run
# again: it starts only what is not running, and restarts libvirtd only when it sees such a
# /dev/kvm. Run by scripts/host-setup.sh, and by the Debian package's postinst (installed as
# /usr/lib/machine/host-daemons). MACHINE_BIN names the machine binary that judges KVM.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "error: starting libvirtd needs root" >&2
	exit 1
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
		echo "==> starting libvirtd"
		libvirtd -d
	fi
}

# Whether the running libvirtd was given the stand-in and it has gone since (someone removed
# /run/machine-no-kvm): that libvirtd can start no QEMU ("Unable to move /dev/kvm mount").
libvirtd_lost_stand_in() {
	local pid
	pid=$(libvirtd_pid) || return 1
	[ -e "/proc/$pid/root/dev/kvm" ] && [ "$(stat -L -c '%t:%T' "/proc/$pid/root/dev/kvm")" = "1:3" ] &&
		[ ! -e /run/machine-no-kvm ]
}

# With systemd, the packages' units run the daemons; without it (containers, CI), start them.
if [ -d /run/systemd/system ]; then
	echo "==> libvirtd and virtlogd run under systemd (libvirt-daemon-system's units)"
else
	mkdir -p /run/libvirt /var/run/libvirt
	if ! pgrep -x virtlogd >/dev/null; then
		echo "==> starting virtlogd"
		virtlogd -d
	fi
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
	if libvirtd_lost_stand_in; then
		echo "==> libvirtd's stand-in for /dev/kvm (/run/machine-no-kvm) was removed: restarting it"
		pkill -x libvirtd
		for _ in $(seq 300); do libvirtd_pid >/dev/null || break; sleep 0.1; done
	fi
	if libvirtd_pid >/dev/null; then
		echo "==> libvirtd and virtlogd run"
	else
		start_libvirtd
	fi
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
