# The data disk keeps everything that must survive a reboot: the engine and its data,
# SSH host keys, /home. A blank disk is formatted; a disk with anything on it never is.
# A disk the host grew (`machine set --disk`) is bigger than its filesystem, which is grown
# to fill it, mounted (ext4 grows online). The sizes come from the superblock (block count at
# byte 1028, log2 of the block size over 1 KiB at 1048) with busybox alone, so a boot with
# nothing to grow runs no e2fsprogs.
grow_filesystem() {
	local dev=$1 blocks log_block fs_bytes dev_bytes
	blocks=$(od -A n -t u4 -j 1028 -N 4 "$dev" | tr -d ' ')
	log_block=$(od -A n -t u4 -j 1048 -N 4 "$dev" | tr -d ' ')
	fs_bytes=$((blocks * (1024 << log_block)))
	dev_bytes=$(($(cat "/sys/class/block/${dev##*/}/size") * 512))
	[ $((dev_bytes - fs_bytes)) -ge 16777216 ] || return 0
	if resize2fs "$dev" >/run/machine/resize2fs.log 2>&1; then
		log "data disk $dev grown to $((dev_bytes >> 30)) GiB"
	else
		log "warning: the data disk's filesystem could not be grown to fill $dev (see /run/machine/resize2fs.log)"
	fi
}

data_dev=$(disk_by_serial machine-data) || data_dev=""
mkdir -p "$DATA"
if [ -z "$data_dev" ]; then
	log "warning: no data disk (virtio serial machine-data): nothing will persist across reboots"
elif is_blank "$data_dev"; then
	log "data disk $data_dev is blank: formatting ext4"
	mkfs.ext4 -q -L machine-data -E lazy_itable_init=1,lazy_journal_init=1 "$data_dev" && sync &&
		mount -t ext4 -o noatime "$data_dev" "$DATA" && log "data disk $data_dev formatted and mounted"
elif mount -t ext4 -o noatime "$data_dev" "$DATA"; then
	log "data disk $data_dev mounted"
	grow_filesystem "$data_dev"
else
	data_dev=""
	log "error: the data disk carries data that is not an ext4 filesystem; it was left untouched and nothing will persist"
fi
if ! grep -q " $DATA " /proc/mounts; then
	mount -t tmpfs -o mode=0755 tmpfs "$DATA"
fi
for d in docker ssh home machine; do mkdir -p "$DATA/$d"; done
mkdir -p /var/lib/docker /etc/ssh/keys /var/lib/machine
mount --bind "$DATA/docker" /var/lib/docker
mount --bind "$DATA/ssh" /etc/ssh/keys
mount --bind "$DATA/home" /home
mount --bind "$DATA/machine" /var/lib/machine
