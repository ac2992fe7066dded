# The data disk keeps everything that must survive a reboot: the engine and its data,
# SSH host keys, /home. A blank disk is formatted; a disk with anything on it never is.
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
