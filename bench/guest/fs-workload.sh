#!/bin/sh
# Run in the guest by bench/shares.py: a sequential write then read of one large file, then
# create, stat and delete of many small files, all in DIR. Prints "PHASE SECONDS" per line.
# The small-file loop uses shell builtins only (echo with a redirect), so it measures the
# filesystem, not process starts; `ls -l` stats every file, `rm` unlinks them in one process.
#
#   fs-workload.sh DIR MEGABYTES FILES
set -e
dir=$1 mb=$2 files=$3
now() { read -r up _ </proc/uptime; echo "$up"; }
report() { awk -v a="$2" -v b="$3" -v p="$1" 'BEGIN { printf "%s %.2f\n", p, b - a }'; }

sync
echo 3 >/proc/sys/vm/drop_caches
t0=$(now)
dd if=/dev/zero of="$dir/big" bs=1M count="$mb" conv=fsync 2>/dev/null
report write "$t0" "$(now)"
# Dropped so the read comes through the share, not from the guest's page cache.
echo 3 >/proc/sys/vm/drop_caches
t0=$(now)
dd if="$dir/big" of=/dev/null bs=1M 2>/dev/null
report read "$t0" "$(now)"
rm -f "$dir/big"

mkdir "$dir/small"
cd "$dir/small"
t0=$(now)
i=0
while [ "$i" -lt "$files" ]; do
	echo "small file $i" >"f$i"
	i=$((i + 1))
done
report create "$t0" "$(now)"
echo 3 >/proc/sys/vm/drop_caches
t0=$(now)
ls -l >/dev/null
report stat "$t0" "$(now)"
t0=$(now)
rm -f f*
report delete "$t0" "$(now)"
cd /
rmdir "$dir/small"
