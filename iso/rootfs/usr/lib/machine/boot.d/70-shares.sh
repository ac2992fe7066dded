# Host folders from the seed's `mounts` file, one per line: TAG<TAB>GUESTPATH<TAB>TYPE<TAB>MODE
# with TYPE virtiofs or 9p and MODE rw or ro, outer folders first. Mounted in the background,
# so sshd does not wait for them; the engine does (engine-run waits for $SHARES_READY), so
# containers restarted at boot find their bind sources.
mount_shares() {
	local tab tag path type mode opts
	[ -s "$SEED/mounts" ] || return 0
	# /proc/machine-notify: where the host's changes to the shares become the guest's events.
	modprobe machine_notify || log "warning: machine_notify did not load; watchers in containers will not hear host edits"
	tab=$(printf '\t')
	while IFS="$tab" read -r tag path type mode; do
		[ -n "$tag" ] || continue
		opts=$mode
		case $type in
		virtiofs) modprobe virtiofs ;;
		9p)
			modprobe -a 9p 9pnet_virtio
			# 512000 is the largest message virtio's transport takes. cache=mmap caches nothing
			# but mmapped pages, so edits made on the host show in the guest at once.
			opts="$opts,trans=virtio,version=9p2000.L,msize=512000,cache=mmap"
			;;
		*) log "error: share $tag has unknown type $type"; continue ;;
		esac
		mkdir -p "$path"
		if mount -t "$type" -o "$opts" "$tag" "$path"; then
			log "share $tag mounted at $path ($type, $mode)"
			# The guest's own changes here are recorded, so the host does not send them back.
			[ "$mode" = rw ] && [ -w /proc/machine-notify ] && printf 'watch 0 %s\n' "$path" >/proc/machine-notify
		else
			log "error: share $tag could not be mounted at $path ($type)"
		fi
	done <"$SEED/mounts"
	# Folders inside the shares that hold the host's machine state (its SSH keys and disks)
	# are covered by an empty read-only folder, so containers that mount the home never see them.
	[ -s "$SEED/hidden" ] || return 0
	while IFS= read -r path; do
		[ -d "$path" ] || continue
		mount -t tmpfs -o ro,size=4k,mode=0555 machine-hidden "$path" && log "hidden: $path"
	done <"$SEED/hidden"
}
(
	mount_shares
	: >"$SHARES_READY"
) &
