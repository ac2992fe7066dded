#!/usr/bin/env bash
# Builds the Debian package machine_VERSION_amd64.deb from this checkout, for `apt install
# ./machine_VERSION_amd64.deb` on a Debian 12 host with no Swift toolchain:
#   /usr/bin/machine                 the release binary, the Swift runtime linked in (--static-swift-stdlib)
#   /usr/lib/machine/prebuilt/       the guest image and engine disk of this version, which every
#                                    account's first `up` boots (built now, or found in the cache)
#   /usr/lib/machine/host-daemons    libvirtd and virtlogd started without systemd (postinst runs it)
#   /usr/lib/machine/docker/docker   the engine's docker CLI, /usr/bin/docker on hosts that have none
#   /usr/share/machine/              the recipes `machine upgrade` and `image build` build from
#   /usr/share/man/man1/machine.1.gz from the commands' own help (swift-argument-parser's generate-manual)
#   shell completion for bash, zsh and fish, and /usr/share/doc/machine
# Prints the package's path last. OUT (default .build/package) is where it goes;
# MACHINE_DEB_VERSION overrides the version (default 0.1.0+gitCOUNT.HASH from git);
# MACHINE_DEB_COMPRESSION the compression as TYPE:LEVEL (default xz:9, the smallest package
# and 100 s here; the tests take gzip:1, which changes only the file's size).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.build/package}
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in dpkg-deb dpkg-shlibdeps gzip strip readelf; do
	command -v "$tool" >/dev/null || {
		echo "error: $tool is not installed" >&2
		echo "hint: apt-get install dpkg-dev binutils (scripts/host-setup.sh does)" >&2
		exit 1
	}
done

echo "==> swift build -c release --static-swift-stdlib" >&2
# The Swift runtime and FoundationEssentials linked in: the installed binary must not need the toolchain.
swift build -c release --static-swift-stdlib --product machine 2>&1 | { grep -vE '^\[[0-9]+/[0-9]+\]|warning: |^ *[|`]' || true; } >&2
binary=.build/release/machine
if ldd "$binary" | grep -q swift; then
	echo "error: $binary still loads Swift libraries from the toolchain:" >&2
	ldd "$binary" | grep swift >&2
	exit 1
fi
# Foundation itself would bring ICU's data and FoundationInternationalization (about 44 MB of
# the binary, 11 MB of the package): machine's modules import FoundationEssentials only.
if grep -qa FoundationInternationalization "$binary"; then
	echo "error: $binary links all of Foundation (and ICU): a module of Sources/ imports Foundation;" >&2
	echo "hint: import FoundationEssentials there (grep -rn '^import Foundation\$' Sources)" >&2
	exit 1
fi
upstream=$("$binary" --version)
if [ -n "${MACHINE_DEB_VERSION:-}" ]; then
	version=$MACHINE_DEB_VERSION
elif git rev-parse --git-dir >/dev/null 2>&1; then
	version="$upstream+git$(git rev-list --count HEAD).$(git rev-parse --short=8 HEAD)"
else
	version=$upstream
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/machine-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/machine" "$root/usr/share/machine/scripts/lib" \
	"$root/usr/share/man/man1" "$root/usr/share/doc/machine" "$root/usr/share/lintian/overrides"

install -m 755 "$binary" "$root/usr/bin/machine"
strip --strip-unneeded "$root/usr/bin/machine"
install -m 755 scripts/host-daemons.sh "$root/usr/lib/machine/host-daemons"
cp -a iso provisioning "$root/usr/share/machine/"
install -m 644 scripts/lib/debian.sh "$root/usr/share/machine/scripts/lib/"

echo "==> the guest image and engine, for every account (machine image build; cached after the first)" >&2
source scripts/lib/prebuilt.sh
publish_prebuilt "$binary" "$root/usr/lib/machine/prebuilt" >&2
# What machine's own boots do not read leaves the package out, which keeps it under half the
# size: the bootable ISO and compressed kernel (the same kernel and initramfs, for booting
# the image by hand or with --iso) and the engine's archive (uploaded only to machines booted
# from a user's own --iso; the rest boot the engine disk). A user who wants them builds them:
# `machine image build`. Hard links to the cache: removing them here leaves the cache whole.
for image in "$root"/usr/lib/machine/prebuilt/images/[0-9a-f]*/; do rm -f "$image/machine.iso" "$image/vmlinuz"; done
for engine in "$root"/usr/lib/machine/prebuilt/engine/[0-9a-f]*/; do rm -f "$engine/engine.tar.xz"; done

# The docker CLI of the engine's own Debian build (docker-cli, the same version as the engine's
# docker.io; no daemon), for hosts that have none: postinst makes it /usr/bin/docker through
# update-alternatives, which leaves a host's own /usr/bin/docker in place.
read -r suite docker_version < <(python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); print(m["suite"], m["docker"])' \
	"$(ls -d "$root"/usr/lib/machine/prebuilt/engine/[0-9a-f]*/ | head -1)manifest.json")
echo "==> the docker CLI $docker_version (Debian $suite's docker-cli)" >&2
(
	source scripts/lib/debian.sh
	cache=$(machine_cache_dir)
	use_suite "$cache" "$suite"
	print_uris "docker-cli=$docker_version" >"$work/cli.uris"
	[ -s "$work/cli.uris" ] || die "Debian $suite has no docker-cli $docker_version" "fetch the package lists again: machine image build --refresh"
	fetch_debs "$work/cli.uris" "$cache/debs" "$work/cli"
	extract_debs "$work/cli.uris" "$cache/debs" "$work/cli/root"
)
install -D -m 755 "$work/cli/root/usr/bin/docker" "$root/usr/lib/machine/docker/docker"
"$root/usr/lib/machine/docker/docker" --version | grep -qF "${docker_version%%-*}" || {
	echo "error: the docker CLI is not the engine's version ${docker_version%%-*}: $("$root/usr/lib/machine/docker/docker" --version)" >&2
	exit 1
}

echo "==> man page and shell completion" >&2
# A debug build: it runs once per package, and builds in half the time of a release one (14 s
# against 28 here).
manual_tool=.build/manual-tool/debug/generate-manual
if [ ! -x "$manual_tool" ]; then
	swift build --package-path .build/checkouts/swift-argument-parser --scratch-path .build/manual-tool \
		--product generate-manual 2>&1 | { grep -vE '^\[[0-9]+/[0-9]+\]' || true; } >&2
fi
mkdir -p "$work/man"
"$manual_tool" "$binary" --authors "the machine developers" --date "$(git log -1 --format=%cs 2>/dev/null || date +%F)" \
	--output-directory "$work/man"
# A blank line in mdoc is a paragraph break that groff warns of; .Pp is the macro for one.
sed 's/^$/.Pp/' "$work/man/machine.1" | gzip -9n >"$root/usr/share/man/man1/machine.1.gz"
mkdir -p "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
"$binary" --generate-completion-script bash >"$root/usr/share/bash-completion/completions/machine"
"$binary" --generate-completion-script zsh >"$root/usr/share/zsh/vendor-completions/_machine"
"$binary" --generate-completion-script fish >"$root/usr/share/fish/vendor_completions.d/machine.fish"

install -m 644 packaging/debian/copyright "$root/usr/share/doc/machine/copyright"
cp README.md docs/*.md "$root/usr/share/doc/machine/"
{
	echo "machine ($version) unstable; urgency=medium"
	echo
	echo "  * Built from commit $(git log -1 --format=%h 2>/dev/null || echo "unknown") of machine's repository."
	echo
	echo " -- machine developers <machine@users.noreply.github.com>  $(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")"
} | gzip -9n >"$root/usr/share/doc/machine/changelog.gz"
install -m 644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/machine"
install -m 755 packaging/debian/postinst packaging/debian/prerm "$root/DEBIAN/"
chmod -R u+rwX,go+rX,go-w "$root"

# Depends: the libraries the binary links, as dpkg-shlibdeps finds them (libvirt0, which the
# binary opens itself at its first connection, is named in control.in), then what it runs.
mkdir -p "$work/debian"
printf 'Source: machine\n\nPackage: machine\nArchitecture: amd64\n' >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O "-e$root/usr/bin/machine" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "error: dpkg-shlibdeps found no libraries for usr/bin/machine" >&2; exit 1; }
# The binary's relocations are packed (DT_RELR: Package.swift), which only glibc 2.36 and later
# load; dpkg-shlibdeps counts the symbols it calls, not that.
if readelf -V "$root/usr/bin/machine" | grep -q GLIBC_ABI_DT_RELR; then
	shlibs=$(printf '%s' "$shlibs" | sed -E 's/libc6 \(>= 2\.([0-9]|[12][0-9]|3[0-5])(\.[0-9]+)?\)/libc6 (>= 2.36)/')
fi
sed -e "s/@VERSION@/$version/" -e "s/@SHLIBS@/$shlibs/" -e "s/@INSTALLED_SIZE@/$(du -sk --exclude=DEBIAN "$root" | cut -f1)/" \
	packaging/debian/control.in >"$root/DEBIAN/control"

deb=$out/machine_${version}_amd64.deb
echo "==> dpkg-deb --build ($(du -sh --exclude=DEBIAN "$root" | cut -f1) installed)" >&2
compression=${MACHINE_DEB_COMPRESSION:-xz:9}
dpkg-deb --root-owner-group "-Z${compression%%:*}" "-z${compression#*:}" --build "$root" "$deb" >&2
echo "==> $(basename "$deb"): $(du -h "$deb" | cut -f1)" >&2
echo "$deb"
