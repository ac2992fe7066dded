#!/usr/bin/env bash
# Puts Debian's sshfs and the shared libraries it links (glibc excepted: the guest has its
# own) into OUTDIR/bin and OUTDIR/lib, for bench/shares.py to copy into a guest. sshfs is the
# peer shares are measured against, mounted the way Lima's reverse-sshfs does it.
#
#   bench/lib/sshfs-bundle.sh OUTDIR
set -Eeuo pipefail
# shellcheck source=../../scripts/lib/debian.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../scripts/lib/debian.sh"
out=${1:?usage: bench/lib/sshfs-bundle.sh OUTDIR}
QUIET=1
cache=$(machine_cache_dir)
mkdir -p "$cache/tmp" "$out"
begin_build "$cache" sshfs
mapfile -t packages < <(resolve_closure sshfs libgcc-s1)
print_uris "${packages[@]}" >"$work/uris"
fetch_debs "$work/uris" "$cache/debs" "$work"
extract_debs "$work/uris" "$cache/debs" "$work/stage"
copy_elf "$work/stage" "$out" usr/bin/sshfs bin/sshfs lib
# glibc loads libgcc_s by itself (for pthread_cancel, at unmount); no ELF header names it.
if gcc_s=$(find_lib "$work/stage" libgcc_s.so.1); then cp -L "$work/stage/$gcc_s" "$out/lib/"; else cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$out/lib/"; fi
(cd "$out/lib" && rm -f libc.so.* libm.so.* libpthread.so.* libdl.so.* librt.so.* libresolv.so.* ld-linux-x86-64.so.*)
dpkg-deb -f "$cache/debs/$(awk '$2 ~ /^sshfs_/ {print $2}' "$work/uris")" Version >"$out/VERSION"
