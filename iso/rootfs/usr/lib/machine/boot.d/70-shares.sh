# Host folders from the seed's `mounts` file, one per line: TAG<TAB>GUESTPATH<TAB>TYPE<TAB>MODE
# with TYPE virtiofs or 9p and MODE rw or ro. Mounted before the engine starts, so containers
# restarted at boot find their bind sources.
[ -s "$SEED/mounts" ] || return 0
tab=$(printf '\t')
while IFS="$tab" read -r tag path type mode; do
	[ -n "$tag" ] || continue
	opts=$mode
	case $type in
	virtiofs) modprobe virtiofs ;;
	9p)
		modprobe -a 9p 9pnet_virtio
		opts="$opts,trans=virtio,version=9p2000.L,msize=524288,cache=mmap"
		;;
	*) log "error: share $tag has unknown type $type"; continue ;;
	esac
	mkdir -p "$path"
	if mount -t "$type" -o "$opts" "$tag" "$path"; then
		log "share $tag mounted at $path ($type, $mode)"
	else
		log "error: share $tag could not be mounted at $path ($type)"
	fi
done <"$SEED/mounts"
