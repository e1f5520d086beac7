#!/bin/sh
# run.sh: build each fuzz/fuzz_*.c with libFuzzer, replay kept inputs, fuzz a while
#
# usage: fuzz/run.sh [SECONDS_PER_HARNESS [NAME ...]]
#	SECONDS defaults to $FUZZ_SECONDS, else 60; 0 only replays.  NAMEs
#	(e.g. http) pick harnesses; the default is every fuzz/fuzz_*.c.
#	$FUZZ_JOBS harnesses run at once (default: the number of CPUs).
#
# The output is TAP, one test point per harness, so that automake's TAP
# driver can count it: make check TESTS=fuzz/run.sh (in a configured tree).
#
# A harness names what it links with in comment lines of its own:
#	/* fuzz-sources: connectd/http.c lib/jsonutil.c */
#	/* fuzz-libs: jansson libpcre2-8 -lev */
#	/* fuzz-options: -max_len=20000 -dict=fuzz/NAME.dict */
# fuzz-libs entries are pkg-config modules, or -lNAME passed as is;
# fuzz-options are extra libFuzzer flags for the fuzzing run.
# Harness fuzz/fuzz_NAME.c uses fuzz/corpus/NAME/ (seeds) and
# fuzz/regress/NAME/ (crash reproducers); both are replayed first.

set -u

secs=${1:-${FUZZ_SECONDS:-60}}
case $secs in
''|*[!0-9]*)
	echo "usage: $0 [SECONDS_PER_HARNESS [NAME ...]]" >&2
	exit 2
	;;
esac
[ $# -gt 0 ] && shift

cd "$(dirname "$0")/.." || exit 2

if [ $# -gt 0 ]; then
	harnesses=
	for n in "$@"; do
		harnesses="$harnesses fuzz/fuzz_${n#fuzz_}.c"
	done
else
	harnesses=$(echo fuzz/fuzz_*.c)
fi

CC=${FUZZ_CC:-clang}
# -D_GNU_SOURCE stands in for config.h (AC_USE_SYSTEM_EXTENSIONS), which
# an unconfigured tree does not have; UB is made fatal so it counts.
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined \
-fno-sanitize-recover=undefined -fno-omit-frame-pointer \
-D_GNU_SOURCE -Ilib -Iconnectd -Ipodmeta"
OUT=fuzz/out

mkdir -p "$OUT" || exit 2
# One run at a time per tree: runs share fuzz/out, and the CPU.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$OUT/.lock"
	if ! flock -n 9; then
		echo "waiting for another fuzz/run.sh in this tree" >&2
		flock 9
	fi
fi
if [ -n "${ASAN_OPTIONS:-}" ]; then
	ASAN_OPTIONS="$ASAN_OPTIONS:"
fi
ASAN_OPTIONS="${ASAN_OPTIONS:-}abort_on_error=0:detect_leaks=1"
UBSAN_OPTIONS=print_stacktrace=1
export ASAN_OPTIONS UBSAN_OPTIONS

# Print the words after "TAG:" on every matching comment line of a file.
directive()
{
	sed -n "s|^[ 	]*/\\*[ 	]*$1:\\(.*\\)\\*/.*|\\1|p" "$2" | tr '\n' ' '
}

# Keep a crashing input as fuzz/regress/NAME/ and say where it went.
keep()
{
	mkdir -p "fuzz/regress/$1" || return
	for a in "$OUT/artifacts/$1"/*; do
		[ -f "$a" ] || continue
		cp "$a" "fuzz/regress/$1/" &&
		    echo "  kept fuzz/regress/$1/$(basename "$a")"
	done
}

# lib/ is linked as an archive, as the programs link lib/libshared.a: a
# harness gets whatever lib/ code its own sources call, without naming it.
LIBSHARED=$OUT/libshared.a
liblog=$OUT/libshared.log
mkdir -p "$OUT/lib" || exit 2
rm -f "$LIBSHARED"
: >"$liblog"
libobjs=
for c in lib/*.c; do
	o=$OUT/lib/$(basename "$c" .c).o
	# shellcheck disable=SC2086
	$CC $CFLAGS $(pkg-config --cflags jansson 2>>"$liblog") -c -o "$o" "$c" \
	    >>"$liblog" 2>&1 || { libobjs=; break; }
	libobjs="$libobjs $o"
done
# shellcheck disable=SC2086
[ -n "$libobjs" ] && ${AR:-ar} rcs "$LIBSHARED" $libobjs >>"$liblog" 2>&1 ||
    rm -f "$LIBSHARED"

# One harness, from build to fuzzing; its TAP line (without its number)
# and any diagnostics go to $OUT/$base.tap: "ok - ..." or "not ok - ...".
one()
{
	src=$1
	base=$(basename "$src" .c)
	name=${base#fuzz_}
	bin=$OUT/$base
	log=$OUT/$base.log
	tap=$OUT/$base.tap

	: >"$log"
	sources=$(directive fuzz-sources "$src")
	libs=
	for l in $(directive fuzz-libs "$src"); do
		case $l in
		-*)	libs="$libs $l" ;;
		*)	libs="$libs $(pkg-config --cflags --libs "$l" 2>>"$log")" ;;
		esac
	done
	options=$(directive fuzz-options "$src")

	if [ ! -f "$LIBSHARED" ]; then
		{ echo "not ok - $base: BUILD FAILED: lib/ did not build (see $liblog)"
		  sed 's/^/# /' "$liblog" | tail -n 20; } >"$tap"
		return
	fi
	# shellcheck disable=SC2086
	if ! $CC $CFLAGS -DSYSCONFDIR='"/etc"' -DLIBEXECDIR='"/usr/libexec"' \
	    -o "$bin" "$src" $sources "$LIBSHARED" $libs >>"$log" 2>&1; then
		{ echo "not ok - $base: BUILD FAILED (see $log)"
		  sed 's/^/# /' "$log" | tail -n 20; } >"$tap"
		return
	fi

	files=$(find "fuzz/regress/$name" "fuzz/corpus/$name" -type f \
	    2>/dev/null | sort)
	nfiles=$(printf '%s\n' "$files" | grep -c .)
	if [ "$nfiles" -gt 0 ]; then
		# shellcheck disable=SC2086
		if ! "$bin" -timeout=25 $files >>"$log" 2>&1; then
			bad=$(sed -n 's/^Running: //p' "$log" | tail -n 1)
			echo "not ok - $base: REPLAY CRASH on $bad (see $log)" >"$tap"
			return
		fi
	fi
	if [ "$secs" -eq 0 ]; then
		echo "ok - $base: replayed $nfiles inputs" >"$tap"
		return
	fi

	mkdir -p "$OUT/corpus/$name" "$OUT/artifacts/$name" "fuzz/corpus/$name"
	rm -f "$OUT/artifacts/$name"/*
	# shellcheck disable=SC2086
	if "$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
	    -artifact_prefix="$OUT/artifacts/$name/" $options \
	    "$OUT/corpus/$name" "fuzz/corpus/$name" >>"$log" 2>&1; then
		stats=$(grep 'DONE' "$log" | tail -n 1 |
		    sed 's/^#\([0-9]*\).*cov: \([0-9]*\).*corp: \([0-9]*\).*/\1 runs, cov \2, corpus \3/')
		echo "ok - $base: replayed $nfiles inputs, fuzzed ${secs}s: $stats" >"$tap"
	else
		{ echo "not ok - $base: CRASH while fuzzing (see $log)"
		  keep "$name" | sed 's/^/# /'; } >"$tap"
	fi
}

# FUZZ_JOBS harnesses at a time (default: one per CPU), each one process:
# every harness fuzzes as long, so batches finish together.
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
found=0
running=0
for src in $harnesses; do
	[ -f "$src" ] || continue
	found=1
	rm -f "$OUT/$(basename "$src" .c).tap"
	one "$src" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait
		running=0
	fi
done
wait

# One TAP test point per harness, in the order given.
failed=0
n=0
for src in $harnesses; do
	n=$((n + 1))
	tap=$OUT/$(basename "$src" .c).tap
	if [ ! -f "$src" ]; then
		echo "not ok $n - $src: no such harness"
		failed=1
	elif [ ! -s "$tap" ]; then
		echo "not ok $n - $(basename "$src" .c): no result"
		failed=1
	else
		head -n 1 "$tap" | sed "s/^\(not ok\|ok\) -/\1 $n -/"
		tail -n +2 "$tap"
		head -n 1 "$tap" | grep -q '^not ok' && failed=1
	fi
done

if [ $found -eq 0 ]; then
	echo "Bail out! no fuzz/fuzz_*.c harness found"
	exit 2
fi
echo "1..$n"
exit $failed
