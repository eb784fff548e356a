#!/bin/sh
# Build dist/dokrust: the whole TypeScript program as one executable made
# by `bun build --compile --bytecode` (Bun's runtime plus dokrust's code,
# already parsed into bytecode).  It starts a container in less than half
# the time that `bun src/main.ts` takes, which spends ~25 ms transpiling
# and loading modules first (docs/BENCHMARKS.md has the numbers).
# Run by `npm install` (postinstall), `npm run build` and `npm test`.
#
# bin/dokrust runs dist/dokrust only while it is fresh: every source the
# build read, listed in dist/dokrust-sources.sh (a shell fragment), must
# be older than that list, which is dated to the moment the build started.
# Otherwise, and when the build fails, bin/dokrust runs src/main.ts: a
# stale bundle never runs, and a failed build costs speed, not function.
#
#   --force   rebuild even when dist/dokrust is fresh
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bun=node_modules/bun/bin/bun.exe
out=dist/dokrust
list=dist/dokrust-sources.sh

# fresh: whether every listed source is older than the list (the test
# bin/dokrust makes before running the bundle).  The list is a shell
# fragment, sourced: dash reads a file it sources in blocks, but one it
# reads with `read` a byte per system call.
fresh() {
	[ -x "$out" ] && [ -f "$list" ] || return 1
	dokrust_sources=
	. "./$list"
	[ -n "$dokrust_sources" ] || return 1
	for f in $dokrust_sources; do
		[ "$f" -ot "$list" ] || return 1
	done
}

if [ "${1:-}" != --force ] && fresh; then
	exit 0
fi
if [ ! -x "$bun" ]; then
	echo "dokrust: $bun is missing, so dist/dokrust was not built; bin/dokrust runs the sources (run npm install)" >&2
	exit 0
fi

mkdir -p dist
tmp=$(mktemp -d dist/.build.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# Dated before the build reads any source: a source saved while it runs is
# not older than this, so the bundle counts as stale.
touch "$tmp/started"

# --format=cjs: an ESM bundle hoists every import of a built-in module
# to its top, so each start would load all that any command uses (zlib,
# streams, crypto, child_process: ~2.5 ms); CommonJS requires them where
# the importing module is first used.  It allows no top-level await in
# src/, and import.meta.url is the source file's path at build time.
# --no-compile-autoload-*: the executable must not read .env or
# bunfig.toml from whatever directory it is started in (an engine's
# bundle directory, a user's checkout): it runs as root, and bunfig can
# preload code.
if ! "$bun" build src/main.ts --compile --bytecode --format=cjs --minify-syntax --minify-whitespace \
	--no-compile-autoload-dotenv --no-compile-autoload-bunfig \
	--metafile="$tmp/meta.json" --outfile "$tmp/dokrust" > "$tmp/log" 2>&1; then
	rm -f "$list" "$out"
	echo "dokrust: building dist/dokrust failed, so bin/dokrust runs the sources:" >&2
	sed 's/^/  /' "$tmp/log" >&2
	exit 0
fi

# The sources: the build's inputs (paths relative to the top), plus what
# can change how they compile.  Bundled packages are covered by npm's own
# record of node_modules, which every npm install rewrites.
"$bun" --no-env-file --config=/dev/null -e '
const { relative } = await import("node:path");
const meta = JSON.parse(await Bun.file(process.argv[1]).text());
const extra = ["package.json", "tsconfig.json", "node_modules/.package-lock.json"];
for (const f of [...Object.keys(meta.inputs), ...extra]) {
  if (await Bun.file(f).exists()) console.log(f.startsWith("/") ? relative(process.cwd(), f) : f);
}
' "$tmp/meta.json" > "$tmp/inputs"
# bin/dokrust splits the list on blanks, unquoted: plain names only.
if grep -q '[^A-Za-z0-9._/-]' "$tmp/inputs" || [ ! -s "$tmp/inputs" ]; then
	rm -f "$list" "$out"
	echo "dokrust: a source path has characters the launcher cannot list, so dist/dokrust is not used:" >&2
	grep '[^A-Za-z0-9._/-]' "$tmp/inputs" | sed 's/^/  /' >&2
	exit 0
fi
{
	echo "# The sources of dist/dokrust, written by scripts/bundle.sh and dated to"
	echo "# the start of its build; bin/dokrust sources this file."
	printf "dokrust_sources='%s'\n" "$(tr '\n' ' ' < "$tmp/inputs" | sed 's/ $//')"
} > "$tmp/sources"
touch -r "$tmp/started" "$tmp/sources"

# Remove the old list first and put the new one last: in between,
# bin/dokrust finds no list and runs the sources; it never sees a list
# that vouches for a bundle it did not come with.
rm -f "$list"
mv -f "$tmp/dokrust" "$out"
mv -f "$tmp/sources" "$list"
