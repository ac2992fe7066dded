# Shared by the guest-image recipe (iso/build.sh) and the engine-bundle recipe
# (provisioning/build-bundle.sh): resolve Debian packages, download them into a
# verified cache, extract them, and copy ELF binaries with the libraries they need.
# Sourced, not run. Nothing here touches the host outside the cache folder.

# die MESSAGE HINT: every failure a user can meet ends here, so it always says what to do.
die() {
	printf 'error: %s\n' "$1" >&2
	[ -n "${2:-}" ] && printf 'hint: %s\n' "$2" >&2
	exit 1
}

step() { [ -n "${QUIET:-}" ] || printf '==> %s\n' "$*" >&2; }

# Default cache: the same folder `machine` uses, so builds made by hand are found by it.
machine_cache_dir() {
	if [ -n "${MACHINE_CACHE:-}" ]; then
		printf '%s\n' "$MACHINE_CACHE"
	else
		printf '%s\n' "${MACHINE_HOME:-$HOME/.machine}/cache"
	fi
}

# The Debian suites a guest can be built from. The first is the default (Docker Engine 26.1;
# bookworm's is 20.10). DebianSuite.swift names the same, in the same order.
SUITES=(trixie bookworm)
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# apt runs as the calling user; as root its download sandbox user (_apt) cannot write
# into our private folders, so keep downloads as the caller.
APT_OPTS=(-o "APT::Sandbox::User=$(id -un)" -q)
if [ -n "${MACHINE_APT_OPTIONS:-}" ]; then
	# Extra apt options, e.g. a proxy: MACHINE_APT_OPTIONS='-o Acquire::http::Proxy=http://proxy:3128'
	read -r -a _extra <<<"$MACHINE_APT_OPTIONS"
	APT_OPTS+=("${_extra[@]}")
fi
_BASE_APT_OPTS=("${APT_OPTS[@]}")

# debian_version SUITE: the release's number (the guest's /etc/os-release says it).
debian_version() {
	case $1 in bookworm) echo 12 ;; trixie) echo 13 ;; *) die "no Debian version known for $1" "add it to scripts/lib/debian.sh" ;; esac
}

# check_suite SUITE: dies unless SUITE is one a guest can be built from.
check_suite() {
	local s
	for s in "${SUITES[@]}"; do [ "$s" = "$1" ] && return 0; done
	die "unknown Debian suite: $1" "choose one of: ${SUITES[*]}"
}

# suite_sources SUITE: the apt source lines of SUITE on the host's own mirror. They are the
# host's sources (whatever their format, as apt itself reads them) with the host's release
# name replaced: bookworm, bookworm-updates and bookworm-security become trixie,
# trixie-updates and trixie-security. Only the mirror's addresses are taken from the host.
suite_sources() {
	local suite=$1 host lines
	host=$(. /etc/os-release 2>/dev/null && printf '%s' "${VERSION_CODENAME:-}")
	lines=""
	if [ -n "$host" ]; then
		lines=$(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 2>/dev/null |
			awk -v host="$host" -v suite="$suite" -v keyring="$DEBIAN_KEYRING" '
				$2 == host || index($2, host "-") == 1 {
					sub("^" host, suite, $2); sub("/$", "", $1)
					line = "deb [signed-by=" keyring "] " $1 " " $2 " main"
					if (!(line in seen)) { seen[line] = 1; print line }
				}')
	fi
	if [ -z "$lines" ]; then
		lines="deb [signed-by=$DEBIAN_KEYRING] http://deb.debian.org/debian $suite main
deb [signed-by=$DEBIAN_KEYRING] http://deb.debian.org/debian $suite-updates main
deb [signed-by=$DEBIAN_KEYRING] http://deb.debian.org/debian-security $suite-security main"
	fi
	printf '%s\n' "$lines"
}

# use_suite CACHE SUITE [refresh]: points APT_OPTS at an apt root of the builder's own,
# CACHE/apt/SUITE, with the package lists of SUITE on the host's mirror. The host's sources,
# lists, preferences and dpkg state are neither read nor changed (its apt.conf still applies,
# for a proxy). The lists are fetched when there are none, when the mirror's lines changed,
# or when asked (`refresh`: machine upgrade, machine image build --refresh). apt keeps its
# parsed lists in that root (pkgcache.bin, remade when the lists change) even where the host's
# apt.conf turns the cache off, as Debian's container images do: each of a build's dozens of
# apt-cache runs then takes 0.15 s instead of 0.8 s parsing the lists again.
use_suite() {
	local cache=$1 suite=$2 refresh=${3:-} root sources
	check_suite "$suite"
	[ -r "$DEBIAN_KEYRING" ] || die "Debian's archive keyring $DEBIAN_KEYRING is missing" "apt-get install debian-archive-keyring"
	root="$cache/apt/$suite"
	mkdir -p "$root/lists/partial" "$root/archives/partial" "$root/sources.list.d" "$root/preferences.d" ||
		die "cannot create the apt folder $root" "check permissions and free space of $cache"
	[ -f "$root/status" ] || : >"$root/status"
	APT_OPTS=("${_BASE_APT_OPTS[@]}"
		-o "Dir::State=$root" -o "Dir::State::Lists=$root/lists" -o "Dir::State::status=$root/status"
		-o "Dir::Cache=$root" -o "Dir::Cache::archives=$root/archives" -o "Dir::Cache::pkgcache=$root/pkgcache.bin"
		-o "Dir::Etc::sourcelist=$root/sources.list" -o "Dir::Etc::sourceparts=$root/sources.list.d"
		-o "Dir::Etc::preferences=$root/preferences" -o "Dir::Etc::preferencesparts=$root/preferences.d"
		-o "APT::Architecture=amd64" -o "APT::Architectures=amd64")
	sources=$(suite_sources "$suite")
	if [ "$sources" != "$(cat "$root/sources.list" 2>/dev/null)" ]; then
		printf '%s\n' "$sources" >"$root/sources.list"
		refresh=1
	fi
	local had_lists=""
	if compgen -G "$root/lists/*Release" >/dev/null; then had_lists=1; else refresh=1; fi
	[ -z "$refresh" ] && return 0
	step "fetching Debian $suite's package lists"
	local out
	# One update at a time per apt root: another build may be reading or fetching the same lists.
	if ! out=$(flock "$root/lists/.machine-lock" apt-get "${APT_OPTS[@]}" update 2>&1) || printf '%s' "$out" | grep -q '^[EW]:'; then
		if [ -n "$had_lists" ] && compgen -G "$root/lists/*Release" >/dev/null; then
			# As before a refresh: an unreachable mirror does not stop a build the old lists can make.
			printf 'warning: could not fetch Debian %s'"'"'s package lists (%s); building from the ones fetched before\n' \
				"$suite" "$(printf '%s' "$out" | grep -E '^(E|W|Err):' | head -1)" >&2
			return 0
		fi
		if printf '%s' "$out" | grep -qiE 'No space left|ENOSPC'; then
			die "the disk is full while fetching Debian $suite's package lists into $root" "free some space (df -h '$root') and run the build again"
		fi
		die "could not download packages from the Debian mirror (Debian $suite's package lists): $(printf '%s' "$out" | grep -E '^(E|W|Err):' | head -3 | tr '\n' ' ')" \
			"check the network and the mirror in $root/sources.list (taken from the host's apt sources); MACHINE_APT_OPTIONS passes options such as a proxy to apt"
	fi
}

# read_list FILE [SUITE]: the names in a recipe list, without comments and blank lines. A line
# that starts with @SUITE (e.g. "@trixie usr/lib/openssh/sshd-session") is for that suite only.
read_list() {
	sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$1" |
		awk -v suite="${2:-}" '$1 ~ /^@/ { if ($1 != "@" suite) next; sub(/^@[^[:space:]]+[[:space:]]+/, "") } { print }'
}

# resolve_closure PKG...: the packages plus every library package (lib*) they depend on,
# recursively (zlib1g is the one library package not named lib*). Tools they depend on (perl, debconf, adduser...) are left out on purpose:
# the guest gets binaries and their shared libraries, not maintainer scripts.
resolve_closure() {
	local missing=()
	for p in "$@"; do
		apt-cache "${APT_OPTS[@]}" show --no-all-versions "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		die "package(s) not found in the Debian package lists: ${missing[*]}" \
			"check the recipe's package list for typos, then fetch the package lists again: machine image build --refresh"
	fi
	{
		printf '%s\n' "$@"
		apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
			--no-replaces --no-enhances "$@" 2>/dev/null |
			sed -n 's/^ *\(Pre\)\{0,1\}Depends: \([^<][^ ]*\)$/\2/p' | grep -E '^(lib|zlib1g$)' || true
	} | sed 's/:any$//' | sort -u
}

# print_uris PKG...: one line per package: URL FILENAME SIZE SHA256 (apt's own answer,
# so the versions and hashes are exactly what the mirror serves).
print_uris() {
	local out
	if ! out=$(apt-get "${APT_OPTS[@]}" download --print-uris "$@" 2>&1); then
		die "apt could not resolve the packages: $(printf '%s' "$out" | grep '^E:' | head -3 | tr '\n' ' ')" \
			"fetch the package lists again (machine image build --refresh) and check the recipe's package list"
	fi
	printf '%s\n' "$out" | sed -n "s/^'\([^']*\)' \([^ ]*\) \([0-9]*\) SHA256:\([0-9a-f]*\)$/\1 \2 \3 \4/p"
}

# fetch_debs URIS_FILE DEB_CACHE WORK: make sure every listed .deb is in DEB_CACHE with the
# right SHA256. Downloads go to WORK first and are moved in only when whole and verified,
# so an interrupted or failed download never leaves a bad file in the cache.
fetch_debs() {
	local uris=$1 debs=$2 work=$3 url file size sha need=()
	mkdir -p "$debs" "$work/download"
	while read -r url file size sha; do
		if [ -f "$debs/$file" ] && [ "$(stat -c %s "$debs/$file")" = "$size" ]; then
			continue
		fi
		need+=("$url")
	done <"$uris"
	[ ${#need[@]} -eq 0 ] && return 0
	step "downloading ${#need[@]} Debian package(s)"
	local out
	# By name: apt serves the candidate that --print-uris just named; the sha256 check below
	# catches a mirror that changed in between.
	if ! out=$(cd "$work/download" && apt-get "${APT_OPTS[@]}" download $(
		for u in "${need[@]}"; do f=${u##*/}; printf '%s ' "${f%%_*}"; done) 2>&1); then
		if printf '%s' "$out" | grep -qiE 'No space left|ENOSPC'; then
			die "the disk is full while downloading packages into $work" "free some space (df -h '$work') and run the build again"
		fi
		die "could not download packages from the Debian mirror: $(printf '%s' "$out" | grep -E '^(E|Err):' | head -3 | tr '\n' ' ')" \
			"check the network and the mirror in the host's apt sources; MACHINE_APT_OPTIONS passes options such as a proxy to apt"
	fi
	while read -r url file size sha; do
		[ -f "$debs/$file" ] && continue
		if [ ! -f "$work/download/$file" ]; then
			# apt names files with the epoch %-escaped (1%3a1.35.0...); --print-uris does not.
			local alt
			alt=$(cd "$work/download" && ls "${file%%_*}"_*.deb 2>/dev/null | head -1)
			[ -n "$alt" ] && mv "$work/download/$alt" "$work/download/$file"
		fi
		[ -f "$work/download/$file" ] || die "apt did not deliver $file" "fetch the package lists again: machine image build --refresh"
		echo "$sha  $work/download/$file" | sha256sum -c --quiet - >/dev/null 2>&1 ||
			die "checksum mismatch for $file" "the mirror served a corrupt file; build again"
		mv "$work/download/$file" "$debs/$file.part.$$" && mv "$debs/$file.part.$$" "$debs/$file"
	done <"$uris"
}

# extract_debs URIS_FILE DEB_CACHE DEST: unpack every package into one tree (dpkg-deb -x:
# no maintainer scripts run, nothing is installed on the host).
extract_debs() {
	local uris=$1 debs=$2 dest=$3 url file size sha
	mkdir -p "$dest"
	while read -r url file size sha; do
		dpkg-deb -x "$debs/$file" "$dest" || die "could not unpack $file" "check free disk space (df -h '$dest')"
	done <"$uris"
}

LIB_DIRS=(lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu lib64 usr/lib lib)

# find_lib STAGE NAME: where the library NAME lives in the extracted tree.
find_lib() {
	local d
	for d in "${LIB_DIRS[@]}"; do
		if [ -e "$1/$d/$2" ]; then printf '%s\n' "$d/$2"; return 0; fi
	done
	return 1
}

# stage_path STAGE PATH: PATH as the extracted tree has it. Trixie's packages moved /bin, /sbin,
# /lib and /lib64 under /usr (merged /usr); recipes name the classic path, which the guest keeps.
stage_path() {
	if [ ! -e "$1/$2" ] && [ -e "$1/usr/$2" ]; then printf 'usr/%s\n' "$2"; else printf '%s\n' "$2"; fi
}

# copy_elf STAGE ROOT SRC [DEST] [LIBDIR]: copy one binary from the extracted tree and,
# recursively, every shared library its ELF header names (DT_NEEDED), found in the
# same tree. Libraries go to LIBDIR (default: where they were in the package).
copy_elf() {
	local stage=$1 root=$2 dest=${4:-$3} libdir=${5:-} src
	src=$(stage_path "$stage" "$3")
	[ -e "$stage/$src" ] || die "the recipe names $src, but no package provides it" "add the package that ships it to the recipe's package list"
	mkdir -p "$root/$(dirname "$dest")"
	# rm first: DEST may be a busybox applet link, and cp would write through it into busybox.
	rm -f "$root/$dest"
	cp -L --preserve=mode "$stage/$src" "$root/$dest"
	_copy_needed "$stage" "$root" "$stage/$src" "$libdir"
}

_copy_needed() {
	local stage=$1 root=$2 elf=$3 libdir=$4 lib path target
	for lib in $(readelf -d "$elf" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		path=$(find_lib "$stage" "$lib") || die "$(basename "$elf") needs $lib, which no package in the recipe provides" \
			"add the library's package to the recipe's package list"
		if [ -n "$libdir" ]; then target="$libdir/$lib"; else target=$path; fi
		[ -e "$root/$target" ] && continue
		mkdir -p "$root/$(dirname "$target")"
		cp -L "$stage/$path" "$root/$target"
		_copy_needed "$stage" "$root" "$stage/$path" "$libdir"
	done
}

# commit_dir WORK_OUT FINAL: publish a finished artefact folder with one rename, so the
# cache holds either the whole result or nothing. A concurrent build that finished first wins.
commit_dir() {
	mkdir -p "$(dirname "$2")"
	sync -f "$1" 2>/dev/null || sync
	if ! mv -T "$1" "$2" 2>/dev/null; then
		[ -f "$2/manifest.json" ] || die "could not move the finished build into $2" "check permissions and free space of $(dirname "$2")"
	fi
}

# begin_build CACHE KIND: makes $work, a private folder in CACHE/tmp removed on exit, and on
# any failure explains a full disk (the likeliest cause of an unexplained error mid-build).
begin_build() {
	local cache=$1 kind=$2
	work=$(mktemp -d "$cache/tmp/$kind.XXXXXX") || die "cannot create a work folder in $cache/tmp" "check free space and permissions of $cache"
	trap 'rm -rf "$work"' EXIT
	# Expanded now: the trap runs after this function's locals are gone (and under set -u).
	trap "_explain_full_disk $(printf %q "$cache")" ERR
}

_explain_full_disk() {
	local avail
	avail=$(df --output=avail -k "$work" 2>/dev/null | tail -1 | tr -d ' ')
	if [ -n "$avail" ] && [ "$avail" -lt 4096 ]; then
		printf 'error: the disk holding %s is full\nhint: free some space (df -h %s) and run the build again; the cache was left as it was\n' "$1" "$1" >&2
	fi
}

# recipe_hash RECIPE_DIR: a hash of every recipe file and this shared helper. Kept in each
# build's manifest ("recipe"), so `machine` can tell, without asking apt, that the build it
# would reuse came from another recipe (an upgraded `machine`) and must be built again.
recipe_hash() {
	{
		(cd "$1" && find . -type f ! -name '*~' -print0 | sort -z | xargs -0 sha256sum)
		sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
	} | sha256sum | cut -c1-16
}

# recipe_key RECIPE_HASH URIS_FILE: the cache key, a hash of the recipe and the exact .deb files
# (name and sha256). A build hashes its recipe once, for its key and its manifest alike: a recipe
# file edited while it runs must not give a folder whose manifest names another recipe than its
# key (machine would take it for an old build forever and build it again for every account).
recipe_key() {
	{
		printf '%s\n' "$1"
		awk '{print $2, $4}' "$2"
	} | sha256sum | cut -c1-16
}

# is_cached FINAL RECIPE_HASH: whether FINAL is a finished build of this recipe. A folder of the
# key whose manifest names another recipe (left by a build from before recipe hashes were taken
# once) is removed, to be built again.
is_cached() {
	[ -f "$1/manifest.json" ] || return 1
	grep -q "^  \"recipe\": \"$2\"," "$1/manifest.json" && return 0
	step "the cached build $(basename "$1") names another recipe in its manifest: building it again"
	rm -rf "$1"
	return 1
}

# point_latest FOLDER SUITE: CACHE/KIND/latest-SUITE -> the folder just built or found, replaced
# atomically, so `machine start` can use the last build of a suite without asking apt again.
point_latest() {
	local parent
	parent=$(dirname "$1")
	ln -sfn "$(basename "$1")" "$parent/.latest.$$" && mv -T "$parent/.latest.$$" "$parent/latest-$2"
}

# json_escape STRING
json_escape() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }
