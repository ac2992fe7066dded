# The engine's own read-only disk, built on the host from the engine bundle: mounted, and made
# the current engine, so nothing is uploaded or unpacked here (unpacking the bundle took most
# of a first `up` under TCG). Without the disk (an older host, a custom domain) the host
# uploads the bundle and install.sh unpacks it on the data disk, as before.
engine_dev=$(disk_by_serial machine-engine) || engine_dev=""
if [ -n "$engine_dev" ]; then
	mkdir -p /run/machine/engine "$ENGINE_HOME"
	if mount -t ext4 -o ro,noatime "$engine_dev" /run/machine/engine && [ -f /run/machine/engine/VERSION ]; then
		ln -sfn /run/machine/engine "$ENGINE_HOME/.current.new"
		mv -f -T "$ENGINE_HOME/.current.new" "$ENGINE_HOME/current"
		# Versions an earlier boot unpacked are no longer used.
		for d in "$ENGINE_HOME"/*; do
			[ -L "$d" ] || [ ! -d "$d" ] || rm -rf "$d"
		done
		log "engine $(cat /run/machine/engine/VERSION) on its own disk"
	else
		log "warning: the engine disk $engine_dev could not be mounted; the host installs the engine instead"
	fi
fi
