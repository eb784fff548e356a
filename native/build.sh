#!/bin/sh
# Build dokrust's native programs from native/*.c:
#   native/build/dokrust-exec     the executor (exec.c)
#   native/build/dokrust-monitor  the monitor of detached containers (monitor.c)
# Run by `npm install` (postinstall) and `npm run build`.  Each one is
# rebuilt only when its source, plan.h or this script is newer than it.
#
#   CC      the C compiler (default cc)
#   CFLAGS  added after the default flags (e.g. CFLAGS=-Werror in CI)
set -eu

dir=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-cc}
flags="-O2 -Wall -Wextra -std=gnu11 ${CFLAGS:-}"

# build SOURCE OUTPUT
build() {
	src="$dir/$1"
	out="$dir/build/$2"
	if [ -x "$out" ] &&
	   [ -z "$(find "$src" "$dir/plan.h" "$dir/build.sh" -newer "$out")" ]; then
		return 0
	fi
	if ! command -v "${cc%% *}" >/dev/null 2>&1; then
		echo "dokrust: a C compiler (cc or gcc) is needed to build its executor; install one (e.g. 'apt-get install gcc') and run 'npm run build'" >&2
		exit 1
	fi
	mkdir -p "$dir/build"
	tmp="$out.tmp.$$"
	trap 'rm -f "$tmp"' EXIT
	# A static program starts faster (no dynamic loader); glibc's libc.a
	# is not always installed, so fall back to a dynamic one.
	# shellcheck disable=SC2086
	if ! $cc $flags -static -o "$tmp" "$src" 2>/dev/null; then
		$cc $flags -o "$tmp" "$src"
	fi
	mv -f "$tmp" "$out"
}

build exec.c dokrust-exec
build monitor.c dokrust-monitor
