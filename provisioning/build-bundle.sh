#!/usr/bin/env bash
# Builds the Docker Engine bundle that provisioning installs on a machine's data disk:
# Debian's dockerd, containerd, its runc shim, runc and docker-init, with the shared
# libraries they link (found from their ELF headers), the guest-side service and install
# scripts, packed as one xz archive with a version stamp. Packages come from
# `apt-get download` + `dpkg-deb -x`; nothing is installed on the host.
#
# Output: a cache folder named after a hash of every input, holding
#   engine.tar.xz   one top folder, VERSION/, unpacked by guest/install.sh
#   manifest.json   the version, every Debian package and version, sha256 of the archive
set -Eeuo pipefail

usage() {
	cat <<'USAGE'
Usage: provisioning/build-bundle.sh [--suite SUITE] [--refresh] [--cache DIR] [--check] [--quiet] [--recipe-hash]

Builds (or finds in the cache) the engine bundle and prints the folder that holds it.

  --suite SUITE the Debian release the engine comes from: trixie (default, Docker Engine
                26.1) or bookworm (Engine 20.10). A machine's image and engine are of one suite:
                the engine runs on the image's C library.
  --refresh     fetch the Debian package lists again first (else the ones fetched before)
  --cache DIR   cache folder (default: $MACHINE_CACHE, else $MACHINE_HOME/cache, else ~/.machine/cache)
  --check       do not build: print the folder if the bundle for these inputs is cached, else exit 3
  --quiet       no progress lines on stderr
  --recipe-hash print the hash of the recipe that builds record in their manifest, and exit

Examples:
  provisioning/build-bundle.sh
  provisioning/build-bundle.sh --suite bookworm
  scp "$(provisioning/build-bundle.sh)/engine.tar.xz" provisioning/guest/install.sh root@vm:/tmp/
USAGE
}

RECIPE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../scripts/lib/debian.sh
. "$RECIPE/../scripts/lib/debian.sh"

CACHE="" CHECK="" QUIET="" SUITE=${SUITES[0]} REFRESH=""
while [ $# -gt 0 ]; do
	case $1 in
	--suite) SUITE=${2:?--suite needs a Debian release}; shift 2 ;;
	--refresh) REFRESH=1; shift ;;
	--cache) CACHE=${2:?--cache needs a folder}; shift 2 ;;
	--check) CHECK=1; shift ;;
	--quiet) QUIET=1; shift ;;
	--recipe-hash) recipe_hash "$RECIPE"; exit 0 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown option: $1" "see provisioning/build-bundle.sh --help" ;;
	esac
done
CACHE=${CACHE:-$(machine_cache_dir)}
for tool in apt-get apt-cache dpkg-deb readelf patchelf tar xz sha256sum mksquashfs python3 gcc-12 strip; do
	command -v "$tool" >/dev/null || die "$tool is not installed" "run scripts/host-setup.sh (or apt-get install the host packages it lists)"
done
mkdir -p "$CACHE/engine" "$CACHE/tmp" || die "cannot create the cache folder $CACHE" "set MACHINE_CACHE to a writable folder"

begin_build "$CACHE" engine

step "resolving packages"
use_suite "$CACHE" "$SUITE" "$REFRESH"
mapfile -t wanted < <(read_list "$RECIPE/packages.txt" "$SUITE" | awk '{print $1}')
mapfile -t packages < <(resolve_closure "${wanted[@]}")
print_uris "${packages[@]}" | sort -k2 >"$work/uris"
[ -s "$work/uris" ] || die "apt returned no packages to download" "fetch the package lists again: machine image build --refresh"
recipe=$(recipe_hash "$RECIPE")
key=$(recipe_key "$recipe" "$work/uris")
final="$CACHE/engine/$key"
if is_cached "$final" "$recipe"; then
	step "engine bundle is cached"
	point_latest "$final" "$SUITE"
	printf '%s\n' "$final"
	exit 0
fi
[ -z "$CHECK" ] || exit 3

fetch_debs "$work/uris" "$CACHE/debs" "$work"
step "unpacking $(wc -l <"$work/uris") packages"
stage="$work/stage" out="$work/out"
extract_debs "$work/uris" "$CACHE/debs" "$stage"

docker_version=$(dpkg-deb -f "$CACHE/debs/$(awk '$2 ~ /^docker\.io_/ {print $2}' "$work/uris")" Version)
# The version names the install folder in the guest: Debian's version plus the recipe hash,
# so a changed recipe with the same Debian package is still a new install.
version="$(printf '%s' "$docker_version" | tr -c 'A-Za-z0-9.+-' '_')-$key"
bundle="$work/bundle/$version"
mkdir -p "$bundle/bin" "$bundle/lib"

step "collecting binaries and libraries"
while read -r src dest; do
	copy_elf "$stage" "$bundle" "$src" "$dest" lib
done < <(read_list "$RECIPE/files.txt" "$SUITE")
# glibc comes from the guest image: mixing two builds of libc and its loader breaks programs.
(cd "$bundle/lib" && rm -f libc.so.* libm.so.* libpthread.so.* libdl.so.* librt.so.* libresolv.so.* ld-linux-x86-64.so.*)
# The binaries find their libraries through an absolute RPATH to the install folder, not
# LD_LIBRARY_PATH: runc starts `runc init` with a fresh environment (and from a memfd copy
# of itself, so $ORIGIN would not work either). DT_RPATH, unlike RUNPATH, also covers the
# libraries' own dependencies.
for f in "$bundle"/bin/* "$bundle"/lib/*; do
	if readelf -d "$f" 2>/dev/null | grep -q NEEDED; then
		patchelf --force-rpath --set-rpath /var/lib/machine/engine/current/lib "$f"
	fi
done
# Static, so it needs nothing from the guest's C library (see its source for why it exists).
gcc-12 -static -Os -Wall -Werror -o "$bundle/bin/runc-sealed" "$RECIPE/guest/runc-sealed.c"
strip "$bundle/bin/runc-sealed"
cp "$RECIPE/guest/service" "$RECIPE/guest/install.sh" "$RECIPE/guest/containerd.toml" "$RECIPE/guest/platforms" "$bundle/"
chmod 0755 "$bundle/service" "$bundle/install.sh" "$bundle/platforms"

step "making the emulators' squashfs"
# The static emulators of platforms.txt, one probe program each (probe-elf.py) and the table
# guest/platforms registers from: Debian's magic and mask, so nothing is copied by hand.
emulators="$work/emulators"
mkdir -p "$emulators/probes"
platforms=()
while read -r platform emulator; do
	conf="$stage/usr/lib/binfmt.d/qemu-$emulator.conf"
	# bookworm's qemu-user-static names them qemu-NAME-static; trixie's qemu-user, qemu-NAME.
	binary="$stage/usr/bin/qemu-$emulator-static"
	[ -f "$binary" ] || binary="$stage/usr/bin/qemu-$emulator"
	[ -f "$conf" ] && [ -f "$binary" ] && ! readelf -l "$binary" | grep -q INTERP ||
		die "Debian's $SUITE has no static emulator $emulator for $platform" "check provisioning/platforms.txt against the packages"
	cp "$binary" "$emulators/qemu-$emulator-static"
	ln -s "qemu-$emulator-static" "$emulators/$emulator-binfmt-P"
	# Debian's line is :NAME:M::MAGIC:MASK:INTERPRETER:FLAGS (the magic's colons are escaped).
	IFS=: read -r _ _ _ _ magic mask _ <"$conf"
	printf '%s %s %s %s\n' "$platform" "$emulator" "$magic" "$mask" >>"$emulators/platforms.txt"
	python3 "$RECIPE/probe-elf.py" "$platform" "$emulators/probes/$(printf %s "$platform" | tr / -)"
	platforms+=("$platform")
done < <(read_list "$RECIPE/platforms.txt")
# zstd, not xz: each emulated program's first start reads its emulator from here, and zstd
# unpacks several times faster than xz for 10% more (11.1 against 10.1 MB for the five).
mksquashfs "$emulators" "$bundle/emulators.squashfs" -comp zstd -Xcompression-level 19 -b 1M -all-root -noappend -quiet >/dev/null
printf '%s\n' "$version" >"$bundle/VERSION"

step "compressing the bundle"
mkdir -p "$out"
# xz -1: 8 s for trixie's bundle on two cores, against 46 s at the default level (6), for 66 MB
# against 59 (measured). The archive is only sent to a machine that is running when its engine
# changes (every boot mounts the engine disk below), and the Debian package leaves it out
# (scripts/package.sh): 7 MB over the machine's own SSH link are not worth 38 s of every build
# from source. bench/guest_image.py measures the engine disk at xz -6 for its size budget. (No
# --x86 filter: it saves 1 MB more, but the guest's busybox xz cannot unpack it.)
tar -C "$work/bundle" --owner=0 --group=0 --numeric-owner --sort=name -cf - "$version" | xz -T0 -1 >"$out/engine.tar.xz"
# The same files as a read-only ext4 disk, which a machine booted from now on gets as a disk
# of its own and mounts: nothing to upload or unpack in the guest, where unpacking the xz
# archive took most of a first `up` under TCG. The archive stays for a machine that is
# running when the engine changes. (Files keep the builder's uid: root runs them, nothing in
# the bundle is setuid.)
step "making the engine disk"
size_mb=$(($(du -sm "$bundle" | cut -f1) * 12 / 10 + 16))
mke2fs -q -t ext4 -O ^has_journal -m 0 -L machine-engine -E root_owner=0:0 -d "$bundle" "$out/engine.img" "${size_mb}M"
{
	printf '{\n  "key": "%s",\n  "recipe": "%s",\n  "suite": "%s",\n  "version": "%s",\n  "docker": "%s",\n  "built": "%s",\n  "platforms": [%s],\n  "packages": [\n' \
		"$key" "$recipe" "$SUITE" "$(json_escape "$version")" "$(json_escape "$docker_version")" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		"$(printf '"%s", ' "${platforms[@]}" | sed 's/, $//')"
	sep=""
	while read -r url file size sha; do
		printf '%s    {"name": "%s", "version": "%s", "sha256": "%s"}' "$sep" "${file%%_*}" "$(json_escape "$(dpkg-deb -f "$CACHE/debs/$file" Version)")" "$sha"
		sep=$',\n'
	done <"$work/uris"
	printf '\n  ],\n  "artefacts": {\n    "engine.tar.xz": {"size": %s, "sha256": "%s", "unpacked": %s},\n    "engine.img": {"size": %s, "sha256": "%s"},\n    "emulators.squashfs": {"size": %s, "sha256": "%s"}\n  }\n}\n' \
		"$(stat -c %s "$out/engine.tar.xz")" "$(sha256sum "$out/engine.tar.xz" | cut -d' ' -f1)" "$(du -sb "$work/bundle" | cut -f1)" \
		"$(stat -c %s "$out/engine.img")" "$(sha256sum "$out/engine.img" | cut -d' ' -f1)" \
		"$(stat -c %s "$bundle/emulators.squashfs")" "$(sha256sum "$bundle/emulators.squashfs" | cut -d' ' -f1)"
} >"$out/manifest.json"
cp "$RECIPE/guest/install.sh" "$out/install.sh"

commit_dir "$out" "$final"
point_latest "$final" "$SUITE"
step "engine bundle ready: $final ($(du -sh "$final/engine.tar.xz" | cut -f1))"
printf '%s\n' "$final"
