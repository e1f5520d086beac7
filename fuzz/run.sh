#!/bin/sh
# run.sh: build each fuzz/fuzz_*.c with libFuzzer, replay kept inputs, fuzz a while
#
# usage: fuzz/run.sh [SECONDS_PER_HARNESS [NAME ...]]
#	SECONDS defaults to $FUZZ_SECONDS, else 60; 0 only replays.  NAMEs
#	(e.g. http) pick harnesses; the default is every fuzz/fuzz_*.c.
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

failed=0
found=0
n=0
# One TAP test point per harness: "ok N - fuzz_NAME: what was done".
result()
{
	n=$((n + 1))
	case $1 in
	ok)	echo "ok $n - $2" ;;
	*)	echo "not ok $n - $2"; failed=1 ;;
	esac
}

for src in $harnesses; do
	if [ ! -f "$src" ]; then
		result fail "$src: no such harness"
		continue
	fi
	found=1
	base=$(basename "$src" .c)
	name=${base#fuzz_}
	bin=$OUT/$base
	log=$OUT/$base.log

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
		result fail "$base: BUILD FAILED: lib/ did not build (see $liblog)"
		sed 's/^/# /' "$liblog" | tail -n 20
		continue
	fi
	# shellcheck disable=SC2086
	if ! $CC $CFLAGS -DSYSCONFDIR='"/etc"' -DLIBEXECDIR='"/usr/libexec"' \
	    -o "$bin" "$src" $sources "$LIBSHARED" $libs >>"$log" 2>&1; then
		result fail "$base: BUILD FAILED (see $log)"
		sed 's/^/# /' "$log" | tail -n 20
		continue
	fi

	files=$(find "fuzz/regress/$name" "fuzz/corpus/$name" -type f \
	    2>/dev/null | sort)
	nfiles=$(printf '%s\n' "$files" | grep -c .)
	if [ "$nfiles" -gt 0 ]; then
		# shellcheck disable=SC2086
		if ! "$bin" -timeout=25 $files >>"$log" 2>&1; then
			bad=$(sed -n 's/^Running: //p' "$log" | tail -n 1)
			result fail "$base: REPLAY CRASH on $bad (see $log)"
			continue
		fi
	fi
	if [ "$secs" -eq 0 ]; then
		result ok "$base: replayed $nfiles inputs"
		continue
	fi

	mkdir -p "$OUT/corpus/$name" "$OUT/artifacts/$name" "fuzz/corpus/$name"
	rm -f "$OUT/artifacts/$name"/*
	# shellcheck disable=SC2086
	if "$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
	    -artifact_prefix="$OUT/artifacts/$name/" $options \
	    "$OUT/corpus/$name" "fuzz/corpus/$name" >>"$log" 2>&1; then
		stats=$(grep 'DONE' "$log" | tail -n 1 |
		    sed 's/^#\([0-9]*\).*cov: \([0-9]*\).*corp: \([0-9]*\).*/\1 runs, cov \2, corpus \3/')
		result ok "$base: replayed $nfiles inputs, fuzzed ${secs}s: $stats"
	else
		result fail "$base: CRASH while fuzzing (see $log)"
		keep "$name" | sed 's/^/# /'
	fi
done

if [ $found -eq 0 ]; then
	echo "Bail out! no fuzz/fuzz_*.c harness found"
	exit 2
fi
echo "1..$n"
exit $failed
