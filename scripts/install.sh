#!/usr/bin/env bash
# Installs machine for every user of this host: the binary on PATH (PREFIX/bin, default
# /usr/local/bin), the guest recipes it builds images from (PREFIX/share/machine), and shell
# completion for bash, zsh and fish. Builds the release binary first if it is missing or older
# than the sources. Safe to run again over an older version, with machines running: each file
# is replaced by a rename, so running agents keep the binary they started with, and commands
# run after this use the new one. MACHINE_BINARY installs that binary instead (the tests
# install their debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr/local}

if [ ! -w "$(dirname "$prefix")" ] && [ ! -w "$prefix" ]; then
	echo "error: cannot write to $prefix" >&2
	echo "hint: run it as root (sudo scripts/install.sh), or choose a folder with PREFIX=~/.local" >&2
	exit 1
fi

binary=${MACHINE_BINARY:-.build/release/machine}
if [ -z "${MACHINE_BINARY:-}" ] && { [ ! -x "$binary" ] || [ -n "$(find Sources Package.swift -newer "$binary" -print -quit)" ]; }; then
	echo "==> swift build -c release --static-swift-stdlib"
	# pipefail: a failed build stops here, rather than an older binary being installed.
	swift build -c release --static-swift-stdlib 2>&1 | { grep -vE '^\[[0-9]+/[0-9]+\]' || true; } || { echo "error: the release build failed (see above)" >&2; exit 1; }
fi
[ -x "$binary" ] || { echo "error: the release build failed (see above)" >&2; exit 1; }

# put SOURCE DEST MODE: the new file lands beside the old one, then replaces it in one rename.
put() {
	mkdir -p "$(dirname "$2")"
	install -m "$3" "$1" "$2.new.$$"
	mv -f "$2.new.$$" "$2"
}

echo "==> installing into $prefix"
put "$binary" "$prefix/bin/machine" 755
# The recipes, as one folder swapped in by a rename too: a build running now keeps the old one.
share=$prefix/share/machine
staging=$share.new.$$
rm -rf "$staging"
mkdir -p "$staging/scripts/lib"
cp -a iso provisioning "$staging/"
cp -a scripts/lib/debian.sh "$staging/scripts/lib/"
chmod -R a+rX "$staging"
if [ -d "$share" ]; then mv "$share" "$share.old.$$"; fi
mv "$staging" "$share"
rm -rf "$share.old.$$"

# Completion scripts from the binary itself (swift-argument-parser), where each shell looks.
"$prefix/bin/machine" --generate-completion-script bash > "$prefix/bin/.machine-completion.$$"
put "$prefix/bin/.machine-completion.$$" "$prefix/share/bash-completion/completions/machine" 644
"$prefix/bin/machine" --generate-completion-script zsh > "$prefix/bin/.machine-completion.$$"
put "$prefix/bin/.machine-completion.$$" "$prefix/share/zsh/site-functions/_machine" 644
"$prefix/bin/machine" --generate-completion-script fish > "$prefix/bin/.machine-completion.$$"
put "$prefix/bin/.machine-completion.$$" "$prefix/share/fish/vendor_completions.d/machine.fish" 644
rm -f "$prefix/bin/.machine-completion.$$"
# The guest image and engine bundle this version boots, for every account of the host: built
# now into the installing account's cache (found there at once when it has them) and published
# in PREFIX/lib/machine/prebuilt (scripts/lib/prebuilt.sh). Only the default suite is built here
# (an account that asks for another builds its own). MACHINE_NO_PREBUILT=1 leaves this out.
prebuilt=$prefix/lib/machine/prebuilt
if [ -z "${MACHINE_NO_PREBUILT:-}" ]; then
	echo "==> the guest image and engine bundle, for every account (machine image build; cached after the first)"
	source scripts/lib/prebuilt.sh
	if publish_prebuilt "$prefix/bin/machine" "$prebuilt"; then
		built=yes
		chmod a+rx "$prefix/lib/machine"
	else
		echo "warning: the guest image could not be built now (see above): each account builds its own on its first \`machine up\`" >&2
	fi
fi
echo "==> installed: $prefix/bin/machine ($("$prefix/bin/machine" --version)), recipes in $share, completion for bash, zsh and fish${built:+, the guest image and engine in $prebuilt}"
