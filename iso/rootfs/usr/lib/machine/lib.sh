# Helpers for the guest's boot and service scripts (sourced).

# Where persistent state lives: the data disk when mounted, else a RAM folder (said loudly at boot).
DATA=/mnt/data
SEED=/run/machine/seed
ENGINE_HOME=/var/lib/machine/engine
# Made once the boot has mounted the shares (or found none).
SHARES_READY=/run/machine/shares-ready

# log MESSAGE: one console line with the guest's uptime, which the host reads for timings.
log() {
	local up
	read -r up _ </proc/uptime
	echo "[$up] machine: $*" >/dev/console
}

# disk_by_serial SERIAL: the /dev node of the virtio disk whose serial the host set.
disk_by_serial() {
	local b
	for b in /sys/block/vd*; do
		[ -e "$b/serial" ] || continue
		if [ "$(cat "$b/serial")" = "$1" ]; then
			echo "/dev/${b##*/}"
			return 0
		fi
	done
	return 1
}

# is_blank DEVICE: true only if the first and the last MiB are all zeros. Every filesystem,
# partition table, LUKS or RAID header we know of sits there, so a disk that passes carries
# no data worth keeping. Anything else is never formatted.
is_blank() {
	local dev=$1 sectors mib
	sectors=$(cat "/sys/class/block/${dev##*/}/size")
	mib=$((sectors / 2048))
	[ "$mib" -ge 1 ] || return 1
	[ -z "$(dd if="$dev" bs=1048576 count=1 2>/dev/null | tr -d '\000' | head -c 1)" ] || return 1
	[ -z "$(dd if="$dev" bs=1048576 skip=$((mib - 1)) count=1 2>/dev/null | tr -d '\000' | head -c 1)" ] || return 1
}
