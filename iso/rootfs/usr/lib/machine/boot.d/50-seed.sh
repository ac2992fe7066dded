# The seed (config drive) the host attaches: who may log in, the hostname, shares and
# engine settings. It is copied to /run/machine/seed so nothing keeps the device busy.
seed_dev=$(disk_by_serial machine-seed) || seed_dev=""
mkdir -p "$SEED" /etc/ssh/authorized_keys
if [ -n "$seed_dev" ] && mkdir -p /run/machine/seed-mnt && mount -t iso9660 -o ro "$seed_dev" /run/machine/seed-mnt; then
	cp -R /run/machine/seed-mnt/. "$SEED/"
	umount /run/machine/seed-mnt
	if [ -s "$SEED/hostname" ]; then
		hostname "$(head -n 1 "$SEED/hostname")"
		printf '127.0.1.1 %s\n' "$(hostname)" >>/etc/hosts
	fi
	if [ -s "$SEED/authorized_keys" ]; then
		cp "$SEED/authorized_keys" /etc/ssh/authorized_keys/root
		chmod 0600 /etc/ssh/authorized_keys/root
	fi
	log "seed applied: hostname $(hostname)"
else
	log "warning: no seed (virtio serial machine-seed): nobody can log in over SSH"
fi
