# Shared by the image recipes (prepended to each by `soko images build`): a Debian 12 minbase
# root filesystem from the host's own apt mirror, and the clean-up that keeps images small.
set -euo pipefail

# The mirror this host's apt uses (deb822 sources first, then sources.list); none found:
# debootstrap's default.
host_mirror() {
	local m=""
	if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
		m="$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)"
	fi
	if [[ -z "$m" && -r /etc/apt/sources.list ]]; then
		m="$(awk '$1 == "deb" && $2 !~ /^\[/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list)"
	fi
	printf '%s' "$m"
}

# minbase: dpkg, apt, coreutils, bash, and the packages named in $1 (comma-separated).
bootstrap() {
	local root="$1" include="${2:-}" mirror
	mirror="$(host_mirror)"
	rm -rf "$root"
	debootstrap --variant=minbase ${include:+--include="$include"} bookworm "$root" ${mirror:+"$mirror"}
}

# No apt lists or caches, docs, man pages or locales in an image.
slim() {
	local root="$1"
	rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
		"$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
		"$root"/var/log/*.log "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
	find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
}

# The tar the engine imports: numeric owners, relative paths.
pack() {
	tar --numeric-owner -C "$1" -cf "$2" .
}
