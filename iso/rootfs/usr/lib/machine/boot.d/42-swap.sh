# Compressed swap in RAM (zram), so a burst of memory (twenty containers starting at once, a
# build) is squeezed rather than met by the OOM killer: the guest has no swap otherwise. Its
# size is half the RAM, at most 4 GiB (zram-generator's default), counted uncompressed; pages
# compress 2-3x, so it costs a fraction of that and only while used. In the background: it
# is not on the way to sshd or the engine.
(
	if modprobe zram num_devices=1 && [ -e /sys/block/zram0/disksize ]; then
		ram_kib=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)
		size_kib=$((ram_kib / 2))
		[ "$size_kib" -le 4194304 ] || size_kib=4194304
		if echo "${size_kib}K" >/sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0; then
			log "swap: $((size_kib / 1024)) MiB of compressed RAM (zram0, $(cat /sys/block/zram0/comp_algorithm | sed 's/.*\[\(.*\)\].*/\1/'))"
		else
			log "warning: the compressed swap (zram0) could not be set up"
		fi
	else
		log "warning: no zram module: the guest runs without swap"
	fi
) &
