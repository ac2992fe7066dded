# Sourced by scripts/install.sh and scripts/package.sh: the guest image and engine bundle of the
# default suite, built (or found cached) by a machine binary and published in a prebuilt folder,
# which machine boots when an account has no current build of its own (Prebuilt.swift), so a
# first `up` builds nothing.

# publish_prebuilt MACHINE PREBUILT: `MACHINE image build` (cached after the first), then each
# build copied (hard-linked where it can be) to PREBUILT/images/NAME and PREBUILT/engine/NAME,
# and PREBUILT/KIND/latest-SUITE pointed at it. Builds already there stay (a machine running from
# one keeps its files); only latest-SUITE moves, by a rename. Returns 1 if the build failed.
publish_prebuilt() {
	local machine=$1 prebuilt=$2 built suite image engine
	built=$("$machine" image build) || return 1
	suite=$(sed -n 's/^suite: *\([a-z]*\).*/\1/p' <<<"$built")
	image=$(sed -n 's/^image: *\(.*\) (kernel .*/\1/p' <<<"$built")
	engine=$(dirname "$(sed -n 's/^engine: *\(.*\) (Docker .*/\1/p' <<<"$built")")
	if [ -z "$suite" ] || [ ! -d "$image" ] || [ ! -d "$engine" ]; then
		echo "error: cannot read the builds from \`machine image build\`:" >&2
		printf '%s\n' "$built" >&2
		return 1
	fi
	_publish_build "$image" "$prebuilt/images" "$suite"
	_publish_build "$engine" "$prebuilt/engine" "$suite"
	chmod a+rx "$prebuilt" "$prebuilt/images" "$prebuilt/engine"
}

# _publish_build FOLDER KIND_DIR SUITE
_publish_build() {
	local name dest
	name=$(basename "$1")
	dest=$2/$name
	if [ ! -d "$dest" ]; then
		mkdir -p "$2"
		rm -rf "$dest.new.$$"
		cp -al "$1" "$dest.new.$$" 2>/dev/null || cp -a "$1" "$dest.new.$$"
		chmod -R a+rX "$dest.new.$$"
		mv "$dest.new.$$" "$dest"
	fi
	ln -sfn "$name" "$2/.latest.$$"
	mv -T "$2/.latest.$$" "$2/latest-$3"
}
