#!/usr/bin/env bash
# Builds the machine guest image from Debian packages, offline from the host's point of view:
# packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x`; nothing is
# installed on the host, no chroot, no root needed.
#
# Output (a folder in the cache, named after a hash of every input):
#   vmlinux        uncompressed kernel (QEMU boots it through PVH, ~3 s faster under TCG)
#   vmlinuz        the same kernel as Debian ships it (bzImage), used by the ISO
#   initramfs.img  busybox, sshd, iptables, mkfs.ext4, the kernel modules, the boot scripts
#   cmdline        kernel command line for direct kernel boot (from cmdline.txt)
#   machine.iso    bootable El Torito ISO with the same kernel and initramfs
#   manifest.json  every Debian package and version used, sha256 and size of every artefact,
#                  and what the guest serves (from features.txt)
# The folder appears in one rename when complete: an interrupted build leaves no half image.
set -Eeuo pipefail

usage() {
	cat <<'USAGE'
Usage: iso/build.sh [--suite SUITE] [--refresh] [--cache DIR] [--check] [--quiet] [--recipe-hash]

Builds (or finds in the cache) the guest image and prints the folder that holds it.

  --suite SUITE the Debian release of the guest's programs: trixie (default) or bookworm.
                The kernel is bookworm's for both (see "The kernel" below).
  --refresh     fetch the Debian package lists again first (else the ones fetched before)
  --cache DIR   cache folder (default: $MACHINE_CACHE, else $MACHINE_HOME/cache, else ~/.machine/cache)
  --check       do not build: print the folder if the image for these inputs is cached, else exit 3
  --quiet       no progress lines on stderr
  --recipe-hash print the hash of the recipe that builds record in their manifest, and exit

Packages come from the host's Debian mirror through apt roots of the build's own, in
CACHE/apt/SUITE: the host's apt sources, lists and dpkg state are not used or changed.

The kernel: machine_notify.ko (iso/notify) is built on this host against the kernel's headers,
with the host's compiler and the kernel package's own build tools. Debian 12's gcc-12 and glibc
can build for bookworm's 6.1 kernel; trixie's kbuild tools need a newer glibc than Debian 12's.
So every suite boots bookworm's kernel (6.1, still supported by Debian's LTS).

Environment: MACHINE_APT_OPTIONS passes options to apt (e.g. a proxy).

Examples:
  iso/build.sh                      # build once, then answer from the cache
  iso/build.sh --suite bookworm     # the Debian 12 guest (Docker Engine 20.10)
  qemu-system-x86_64 -cdrom "$(iso/build.sh)/machine.iso" -nographic
USAGE
}

RECIPE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../scripts/lib/debian.sh
. "$RECIPE/../scripts/lib/debian.sh"

CACHE="" CHECK="" QUIET="" SUITE=${SUITES[0]} REFRESH="" KERNEL_SUITE=bookworm
while [ $# -gt 0 ]; do
	case $1 in
	--suite) SUITE=${2:?--suite needs a Debian release}; shift 2 ;;
	--refresh) REFRESH=1; shift ;;
	--cache) CACHE=${2:?--cache needs a folder}; shift 2 ;;
	--check) CHECK=1; shift ;;
	--quiet) QUIET=1; shift ;;
	--recipe-hash) recipe_hash "$RECIPE"; exit 0 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown option: $1" "see iso/build.sh --help" ;;
	esac
done
CACHE=${CACHE:-$(machine_cache_dir)}
for tool in apt-get apt-cache dpkg-deb readelf cpio lz4 xz xorriso depmod sha256sum make gcc-12 strip; do
	command -v "$tool" >/dev/null || die "$tool is not installed" "run scripts/host-setup.sh (or apt-get install the host packages it lists)"
done
mkdir -p "$CACHE/images" "$CACHE/tmp" || die "cannot create the cache folder $CACHE" "set MACHINE_CACHE to a writable folder"

begin_build "$CACHE" image

# The kernel (bookworm's for every suite, see --help) is pinned through the meta package to one
# concrete ABI, so the cache key changes when Debian publishes a new kernel.
step "resolving packages"
use_suite "$CACHE" "$KERNEL_SUITE" "$REFRESH"
kernel_pkg=$(apt-cache "${APT_OPTS[@]}" depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1)
[ -n "$kernel_pkg" ] || die "apt does not know linux-image-amd64" "fetch the package lists again: machine image build --refresh"
# The kernel's headers build machine_notify.ko (iso/notify) for exactly this kernel. Only the
# three packages themselves: their dependencies are the compiler, which the host has.
headers_pkg=${kernel_pkg/linux-image-/linux-headers-}
mapfile -t headers < <(apt-cache "${APT_OPTS[@]}" depends "$headers_pkg" 2>/dev/null | sed -n 's/^ *Depends: \(linux-\(headers\|kbuild\)-[^ ]*\)$/\1/p')
[ ${#headers[@]} -eq 2 ] || die "apt does not know $headers_pkg and its common headers and kbuild" "fetch the package lists again: machine image build --refresh"
# The packages alone: what they depend on are tools for a Debian install (kmod, initramfs-tools)
# and bookworm's libraries, which must not be mixed with another suite's C library.
print_uris "$kernel_pkg" "$headers_pkg" "${headers[@]}" | sort -k2 >"$work/uris.kernel"
kernel_apt=("${APT_OPTS[@]}")

use_suite "$CACHE" "$SUITE" "$REFRESH"
mapfile -t wanted < <(read_list "$RECIPE/packages.txt" "$SUITE" | awk '{print $1}')
mapfile -t packages < <(resolve_closure "${wanted[@]}")
print_uris "${packages[@]}" | sort -k2 >"$work/uris.suite"
[ -s "$work/uris.suite" ] && [ -s "$work/uris.kernel" ] || die "apt returned no packages to download" "fetch the package lists again: machine image build --refresh"
sort -k2 -u "$work/uris.kernel" "$work/uris.suite" >"$work/uris"

# The key covers the recipe (every file under iso/ and the shared helper) and the exact .deb files.
recipe=$(recipe_hash "$RECIPE")
key=$(recipe_key "$recipe" "$work/uris")
final="$CACHE/images/$key"
if is_cached "$final" "$recipe"; then
	step "image is cached"
	point_latest "$final" "$SUITE"
	printf '%s\n' "$final"
	exit 0
fi
if [ -n "$CHECK" ]; then
	exit 3
fi

fetch_debs "$work/uris.suite" "$CACHE/debs" "$work"
(APT_OPTS=("${kernel_apt[@]}") && fetch_debs "$work/uris.kernel" "$CACHE/debs" "$work")
step "unpacking $(wc -l <"$work/uris") packages"
stage="$work/stage" root="$work/root" out="$work/out"
extract_debs "$work/uris" "$CACHE/debs" "$stage"
mkdir -p "$root" "$out"

kver=$(cd "$stage/lib/modules" && ls | head -1)
[ -f "$stage/boot/vmlinuz-$kver" ] || die "the kernel package has no /boot/vmlinuz-$kver" "check packages.txt"

step "assembling the root filesystem"
# Directory skeleton, then busybox with one link per applet.
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib/x86_64-linux-gnu,lib64,etc,proc,sys,dev,run,tmp,root,var/log,var/empty,mnt,home}
ln -s ../run "$root/var/run"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
cp "$stage/$(stage_path "$stage" bin/busybox)" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list-full); do
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done

while read -r src dest; do
	copy_elf "$stage" "$root" "$src" "${dest:-$src}"
done < <(read_list "$RECIPE/files.txt" "$SUITE")
# Names the tools are called by. iptables stays on the legacy backend: it was ~1 s faster
# than nft for dockerd's setup under TCG. modprobe must be kmod's (busybox's cannot read
# every modules.dep feature); the kernel runs /sbin/modprobe to autoload netfilter modules.
for name in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
	ln -sf /usr/sbin/xtables-legacy-multi "$root/usr/sbin/$name"
done
for name in modprobe insmod rmmod lsmod depmod modinfo; do ln -sf /bin/kmod "$root/sbin/$name"; done
ln -sf /sbin/mke2fs "$root/sbin/mkfs.ext4"
ln -sf /sbin/e2fsck "$root/sbin/fsck.ext4"
mkdir -p "$root/usr/lib/x86_64-linux-gnu/xtables"
for ext in "$stage"/usr/lib/x86_64-linux-gnu/xtables/*.so; do
	copy_elf "$stage" "$root" "${ext#"$stage"/}"
done
cp "$stage/etc/mke2fs.conf" "$root/etc/mke2fs.conf"
cp "$stage/etc/ssh/moduli" "$root/etc/ssh.moduli" 2>/dev/null || true

step "selecting kernel modules"
depmod -b "$stage" "$kver"
mods=$(read_list "$RECIPE/modules.txt")
# modprobe --show-depends prints the insmod order of a module and its dependencies without
# loading anything; built-in modules print "builtin" and need no file.
for m in $mods; do
	modprobe -d "$stage" -S "$kver" --show-depends "$m" 2>/dev/null || die "kernel module $m is not in $kver" "fix iso/modules.txt"
done | awk '$1 == "insmod" {print $2}' | sort -u | while read -r ko; do
	rel=${ko#"$stage"/}
	mkdir -p "$root/$(dirname "$rel")"
	cp "$ko" "$root/$rel"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
	cp "$stage/lib/modules/$kver/$f" "$root/lib/modules/$kver/$f"
done
step "building machine_notify.ko"
# The headers' Makefile includes the common headers by their installed path; point it at ours.
headers_dir="$stage/usr/src/linux-headers-$kver"
sed -i "s#^include /usr/src/#include $stage/usr/src/#" "$headers_dir/Makefile"
cp -r "$RECIPE/notify" "$work/notify"
make -s -C "$headers_dir" M="$work/notify" CC=gcc-12 modules >"$work/notify.log" 2>&1 \
	|| die "machine_notify.ko did not build: $(grep -m3 -i error "$work/notify.log" | tr '\n' ' ')" "see iso/notify; the host needs gcc-12 and make (scripts/host-setup.sh)"
mkdir -p "$root/lib/modules/$kver/extra"
strip --strip-debug -o "$root/lib/modules/$kver/extra/machine_notify.ko" "$work/notify/machine_notify.ko"
depmod -b "$root" "$kver"

# The guest's own files: init, boot steps, configuration. Copied last so they win.
cp -a "$RECIPE/rootfs/." "$root/"
printf '%s\n' "$key" >"$root/etc/machine-image"
# What `docker info` reports as the engine's operating system (dockerd reads it at start, and
# says "<unknown>" with a warning in its log without it).
version=$(debian_version "$SUITE")
cat >"$root/etc/os-release" <<EOF
PRETTY_NAME="machine guest (Debian $version $SUITE)"
NAME="machine guest"
ID=machine
ID_LIKE=debian
VERSION_ID="$version"
VERSION_CODENAME=$SUITE
BUILD_ID=$key
EOF

step "packing the initramfs"
# lz4 (legacy frame, what the kernel reads): bigger than gzip but unpacks ~2x faster under TCG.
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) | lz4 -l -9 -q >"$out/initramfs.img"

step "extracting the uncompressed kernel"
cp "$stage/boot/vmlinuz-$kver" "$out/vmlinuz"
# vmlinuz is a bzImage whose payload is an XZ stream; find it and unpack the ELF vmlinux
# (what scripts/extract-vmlinux in the kernel tree does).
offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$out/vmlinuz" | head -1 | cut -d: -f1)
[ -n "$offset" ] || die "no XZ payload in vmlinuz-$kver" "the kernel is compressed differently; update the extraction in iso/build.sh"
tail -c +$((offset + 1)) "$out/vmlinuz" | xz -dc --single-stream >"$out/vmlinux" 2>/dev/null || true
[ "$(head -c 4 "$out/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ] || die "could not extract vmlinux from vmlinuz-$kver" "check free disk space"

step "making the bootable ISO"
iso="$work/isotree"
mkdir -p "$iso/isolinux" "$iso/boot"
cp "$stage/usr/lib/ISOLINUX/isolinux.bin" "$stage/usr/lib/syslinux/modules/bios/ldlinux.c32" "$iso/isolinux/"
sed "s|@CMDLINE@|$(read_list "$RECIPE/cmdline.txt" | tr '\n' ' ')|" "$RECIPE/isolinux.cfg" >"$iso/isolinux/isolinux.cfg"
read_list "$RECIPE/cmdline.txt" | tr '\n' ' ' | sed 's/ $//' >"$out/cmdline"
cp "$out/vmlinuz" "$iso/boot/vmlinuz"
cp "$out/initramfs.img" "$iso/boot/initramfs.img"
xorriso -as mkisofs -quiet -o "$out/machine.iso" -V MACHINE -J -R \
	-isohybrid-mbr "$stage/usr/lib/ISOLINUX/isohdpfx.bin" \
	-b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
	"$iso" 2>"$work/xorriso.log" || die "xorriso failed: $(tail -3 "$work/xorriso.log")" "check free disk space"

step "writing the manifest"
{
	printf '{\n  "key": "%s",\n  "recipe": "%s",\n  "suite": "%s",\n  "kernel": "%s",\n  "built": "%s",\n  "packages": [\n' "$key" "$recipe" "$SUITE" "$kver" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	sep=""
	while read -r url file size sha; do
		n=${file%%_*}; v=$(dpkg-deb -f "$CACHE/debs/$file" Version)
		printf '%s    {"name": "%s", "version": "%s", "sha256": "%s"}' "$sep" "$n" "$(json_escape "$v")" "$sha"
		sep=$',\n'
	done <"$work/uris"
	printf '\n  ],\n  "features": [%s],\n  "artefacts": {\n' "$(read_list "$RECIPE/features.txt" | awk '{printf "%s\"%s\"", (NR > 1 ? ", " : ""), $1}')"
	sep=""
	for f in vmlinux vmlinuz initramfs.img machine.iso cmdline; do
		printf '%s    "%s": {"size": %s, "sha256": "%s"}' "$sep" "$f" "$(stat -c %s "$out/$f")" "$(sha256sum "$out/$f" | cut -d' ' -f1)"
		sep=$',\n'
	done
	printf '\n  }\n}\n'
} >"$out/manifest.json"

commit_dir "$out" "$final"
point_latest "$final" "$SUITE"
step "image ready: $final ($(du -sh "$final/machine.iso" | cut -f1) ISO)"
printf '%s\n' "$final"
