#!/bin/sh
# Installs an engine bundle on the guest's data disk and switches the engine to it.
# Usage: install.sh ARCHIVE [SHA256]
# Idempotent: a bundle already installed is not unpacked again. Safe against a crash at any
# point: the new version is unpacked beside the old one and `current` flips in one rename.
set -eu
. /usr/lib/machine/lib.sh

archive=${1:?usage: install.sh ARCHIVE [SHA256]}
want_sha=${2:-}
[ -f "$archive" ] || { echo "error: no bundle at $archive" >&2; exit 1; }
if [ -n "$want_sha" ]; then
	have=$(sha256sum "$archive" | cut -d' ' -f1)
	[ "$have" = "$want_sha" ] || { echo "error: the bundle's sha256 is $have, expected $want_sha: the upload was damaged, send it again" >&2; exit 1; }
fi
mkdir -p "$ENGINE_HOME"
incoming="$ENGINE_HOME/.incoming.$$"
rm -rf "$ENGINE_HOME"/.incoming.*
mkdir "$incoming"
trap 'rm -rf "$incoming"' EXIT
if ! xz -dc "$archive" | tar -x -C "$incoming"; then
	echo "error: could not unpack $archive (disk full? see df -h $ENGINE_HOME)" >&2
	exit 1
fi
version=$(ls "$incoming")
[ -n "$version" ] && [ -f "$incoming/$version/VERSION" ] || { echo "error: $archive is not an engine bundle" >&2; exit 1; }
if [ -f "$ENGINE_HOME/$version/VERSION" ]; then
	echo "engine $version already installed"
else
	sync
	mv -f "$incoming/$version" "$ENGINE_HOME/$version"
	echo "engine $version unpacked"
fi
current=$(readlink "$ENGINE_HOME/current" 2>/dev/null || true)
if [ "$current" != "$version" ]; then
	ln -sfn "$version" "$ENGINE_HOME/.current.new"
	mv -f -T "$ENGINE_HOME/.current.new" "$ENGINE_HOME/current"
	sync
	log "engine $version installed"
	# A running older engine is stopped; init then starts the new one through engine-run.
	if [ -n "$current" ] && [ -x "$ENGINE_HOME/$current/service" ]; then
		"$ENGINE_HOME/$current/service" stop || true
	fi
	"$ENGINE_HOME/$version/service" start
	# Old versions are removed once the new one is in place.
	for d in "$ENGINE_HOME"/*; do
		[ -L "$d" ] || [ "${d##*/}" = "$version" ] || rm -rf "$d"
	done
fi
