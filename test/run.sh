#!/bin/sh
# What `npm test` runs: build the fixtures, type-check, then run the unit
# tests and (as root) the integration tests, and print one closing line
#   N passed, N failed[, N skipped]
# summing both runs. Exits non-zero if anything failed.
#
# DOKRUST_TEST_FILTER=TEXT  run only test files whose path contains TEXT
#                           (what `bun test TEXT` would do)
set -eu
cd "$(dirname "$0")/.."

bun=node_modules/.bin/bun
filter=${DOKRUST_TEST_FILTER:-}
passed=0 failed=0 skipped=0 nfiles=0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "$(id -u)" = 0 ]; then
	sh test/fixtures/build.sh
else
	sh test/fixtures/build.sh --busybox-only
fi

if [ -f tsconfig.json ]; then
	if ! node_modules/.bin/tsc --noEmit -p .; then
		echo "type check failed"
		exit 1
	fi
	echo "type check: ok"
fi

# run_suite NAME DIR [BUN-OPTION...]: bun test over DIR/**/*.test.ts,
# adding bun's pass/fail/skip/todo counts to the totals.
run_suite() {
	name=$1 dir=$2
	shift 2
	files=$(find "$dir" -type f -name '*.test.ts' 2>/dev/null | sort | grep -F -e "$filter" | sed 's|^|./|') || true
	if [ -z "$files" ]; then
		echo "$name: no test files"
		return
	fi
	echo "== $name tests"
	nfiles=$((nfiles + $(echo "$files" | wc -l)))
	# $files: one per line, split on purpose (test file names have no spaces).
	{
		rc=0
		"$bun" test --timeout=60000 "$@" $files || rc=$?
		echo "$rc" > "$tmp/rc"
	} 2>&1 | tee "$tmp/out"
	# The summary is the last " N pass" / " N fail" / ... lines bun prints.
	set -- $(sed 's/\x1b\[[0-9;]*m//g' "$tmp/out" | awk '
		/^ *[0-9]+ pass$/ { p = $1 }
		/^ *[0-9]+ fail$/ { f = $1 }
		/^ *[0-9]+ (skip|todo)$/ { s += $1 }
		END { print p + 0, f + 0, s + 0 }')
	if [ "$(cat "$tmp/rc")" != 0 ] && [ "$2" = 0 ]; then
		echo "$name: bun test exited with status $(cat "$tmp/rc") but reported no failed test; counting one failure"
		set -- "$1" 1 "$3"
	fi
	passed=$((passed + $1)) failed=$((failed + $2)) skipped=$((skipped + $3))
}

run_suite unit test/unit

if [ "$(id -u)" = 0 ]; then
	# Integration tests share the machine: one test at a time.
	run_suite integration test/integration --max-concurrency=1
else
	echo "integration tests need root: skipped"
fi

if [ -n "$filter" ] && [ "$nfiles" = 0 ]; then
	echo "no test file path contains DOKRUST_TEST_FILTER=$filter"
	exit 1
fi

summary="$passed passed, $failed failed"
[ "$skipped" = 0 ] || summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" = 0 ]
