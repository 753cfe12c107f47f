# shellcheck shell=bash
# Shared helpers for scripts/* — source it, don't run it:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Every caller runs in strict mode anyway; repeating it here keeps a caller
# that forgot it from silently ignoring failures inside these helpers.
set -euo pipefail

# Progress goes to stderr so a script's stdout stays usable for data.
log() { printf '%s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# True when a command is callable (binary, function or builtin).
have() { command -v "$1" >/dev/null 2>&1; }

# The repository root, found from this file's own location so scripts work
# from any working directory (and from a fresh CI clone in another folder).
soko_repo_root() {
	(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
}

# Cargo builds outside the work tree by default: CI keeps $HOME/.cache/soko
# between runs on the same machine, so the target directory doubles as the
# build cache. An explicitly set CARGO_TARGET_DIR always wins.
ensure_target_dir() {
	export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/soko/target}"
	mkdir -p "$CARGO_TARGET_DIR"
}

# cargo from PATH, else rustup's default location (a root shell started by
# sudo or su often lacks ~/.cargo/bin on PATH). Prints the path, or fails.
find_cargo() {
	if [[ -n "${SOKO_CARGO:-}" && -x "${SOKO_CARGO}" ]]; then
		printf '%s\n' "$SOKO_CARGO"
	elif have cargo; then
		command -v cargo
	elif [[ -x "$HOME/.cargo/bin/cargo" ]]; then
		printf '%s\n' "$HOME/.cargo/bin/cargo"
	else
		return 1
	fi
}

# Soko's scripts install Debian 12 (bookworm) packages: without apt, stop; on
# another release (Ubuntu included), warn, since package names and the Python
# version may differ there (untested).
require_debian_12() {
	if ! have dpkg-query || ! have apt-get; then
		die "dpkg/apt-get not found: Soko's scripts support Debian 12 (bookworm) only"
	fi
	local id="" version=""
	if [[ -r /etc/os-release ]]; then
		# shellcheck disable=SC1091 # the machine's own file
		id="$(. /etc/os-release && printf '%s' "${ID:-}")"
		# shellcheck disable=SC1091
		version="$(. /etc/os-release && printf '%s' "${VERSION_ID:-}")"
	fi
	if [[ "$id" != debian || "$version" != 12 ]]; then
		warn "this is ${id:-an unknown system} ${version}; Soko's scripts support Debian 12 (bookworm) only: continuing, untested"
	fi
}

# Install the Debian packages given that are not installed yet. The package
# lists are refreshed only when something must be installed, which keeps
# re-runs fast and offline-safe.
apt_install() {
	local pkg missing=()
	for pkg in "$@"; do
		# shellcheck disable=SC2016 # ${Status} is dpkg-query's field, not a shell variable
		if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
			missing+=("$pkg")
		fi
	done
	if ((${#missing[@]})); then
		log "installing: ${missing[*]}"
		apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	fi
	log "ok: debian packages ($# checked)"
}
