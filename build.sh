#!/bin/sh
# build.sh: install dependencies, build, run connectd, or run the whole test suite.
#   ./build.sh deps    install the Debian packages (needs root or sudo)
#   ./build.sh build   configure and build in ./build (out of tree)
#   ./build.sh run     deps + build + make install (as root), then the installed
#                      connectd in the foreground on the installed connectd.conf
#   ./build.sh test    deps + build with -Werror, make distcheck (which runs the
#                      suite), the suite under ASan+UBSan, a short libFuzzer
#                      run of every harness, and the container image built
#                      and run (make check-image); ends with `N passed,
#                      N failed`, the TAP driver's counts over the four
set -eu
cd "$(dirname "$0")"
top=$(pwd)

BUILD_DEPS="build-essential autoconf automake libtool pkg-config clang
	libev-dev libcurl4-openssl-dev libjansson-dev libpcre2-dev libc-ares-dev libyaml-dev
	libssl-dev"
# curl: the README's first try of the proxy
RUN_DEPS="ca-certificates curl"
# pkg:cmd means: install pkg unless cmd is already on PATH from elsewhere.
# python3-prometheus-client: its parser reads /metrics in t/74 (Debian's
# prometheus, for promtool, is 96 MB: t/74 uses it only when present)
# systemd: systemd-analyze verify (t/87) and the manager t/89 boots in
# namespaces; it is not started on install.  procps: the unit's /bin/kill
# (on every systemd host; a minbase system lacks it, and verify says so)
# nodejs, npm: t/83 installs npm's kubernetes-models (the Kubernetes
# OpenAPI schemas) to validate deploy/ offline
# sqlfluff: t/99 parses conf/learn.sql (connectd-learn(1)'s BigQuery SQL)
TEST_DEPS="python3 perl jq openssl netcat-openbsd iproute2 squid tinyproxy
	skopeo docker-registry git kubernetes-client:kubectl man-db groff-base
	util-linux libclang-rt-dev valgrind logrotate dpkg-dev python3-pip
	docker.io:dockerd python3-prometheus-client luajit
	systemd:systemd-analyze procps gzip nodejs:node npm:npm debootstrap
	sqlfluff"

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

deps() {
	pkgs="$BUILD_DEPS $RUN_DEPS"
	[ "${1:-}" = test ] && pkgs="$pkgs $TEST_DEPS"
	missing=""
	for p in $pkgs; do
		case $p in
		*:*)	command -v "${p#*:}" >/dev/null 2>&1 && continue
			p=${p%%:*} ;;
		esac
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		    grep -q 'ok installed' || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "build.sh: installing:$missing"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# shellcheck disable=SC2086
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $missing >/dev/null
}

# Configure DIR with the given options unless it already is (a tree that
# `run` configured is configured again for `test`, with -Werror), and build.
build() {
	dir=$1; shift
	[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi)
	mkdir -p "$dir"
	(cd "$dir" &&
	    { [ -f Makefile ] && [ "$(cat .build-args 2>/dev/null)" = "$*" ] ||
	      { "$top/configure" -q "$@" && echo "$*" >.build-args; }; } &&
	    make -s -j"$(nproc)")
}

# A phase of the test command: make ARGS... in DIR (its output in
# DIR/LOG.log), which runs tests
# through automake's TAP driver.  Its per-file results are shown, the tail
# of the log of each file that did not pass, and the driver's summary
# ("# PASS:", "# FAIL:", ...) is added to the closing line.  A phase that
# fails to build, or whose make fails without a summary, counts as one
# failure.
PASSED=0
FAILED=0
SKIPPED=0
phase() {
	name=$1; dir=$2; log=$dir/$3.log; shift 3
	echo "== $name"
	touch "$log.stamp"
	set +e
	(cd "$dir" && make "$@") >"$log" 2>&1
	rc=$?
	set -e
	# per file: the driver's .trs files (make's output interleaves
	# under -j), one ":test-result: PASS" line per test point
	find "$dir" -name '*.trs' -newer "$log.stamp" 2>/dev/null | sort |
	while read -r trs; do
		f=${trs%.trs}
		f=$(basename "$(dirname "$f")")/$(basename "$f")
		awk -v f="$f" '/^:test-result: / { c[$2]++ }
		/^:global-test-result: (FAIL|ERROR|XPASS)/ { bad = 1 }
		END {
			split("PASS SKIP XFAIL FAIL XPASS ERROR", rs, " ")
			for (j = 1; j <= 6; j++)
				if (c[rs[j]]) s = s sprintf(" %s %d", rs[j], c[rs[j]])
			printf "  %-4s %s:%s\n", bad ? "FAIL" : "ok", f, s
		}' "$trs"
	done
	# the tail of every failing file's log (what test-suite.log holds)
	for trs in $(find "$dir" -name '*.trs' -newer "$log.stamp" 2>/dev/null); do
		grep -q '^:global-test-result: \(FAIL\|ERROR\|XPASS\)' "$trs" ||
		    continue
		echo "  --- tail of ${trs%.trs}.log"
		tail -n 40 "${trs%.trs}.log" | sed 's/^/  | /'
	done
	summary=$(sed -n '/^# TOTAL:/,/^# ERROR:/p' "$log" | tail -n 7)
	if [ -z "$summary" ]; then
		echo "  no test summary: make failed (exit $rc); the end of $log:"
		tail -n 40 "$log" | sed 's/^/  | /'
		FAILED=$((FAILED + 1))
		return
	fi
	count() { echo "$summary" | sed -n "s/^# $1: *//p"; }
	p=$(count PASS); x=$(count XFAIL); s=$(count SKIP)
	f=$(( $(count FAIL) + $(count XPASS) + $(count ERROR) ))
	echo "  $name: $p passed, $f failed, $s skipped, $x expected failures"
	PASSED=$((PASSED + p + x))
	SKIPPED=$((SKIPPED + s))
	FAILED=$((FAILED + f))
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		echo "  make failed (exit $rc) after the tests; the end of $log:"
		tail -n 40 "$log" | sed 's/^/  | /'
		FAILED=$((FAILED + 1))
	fi
}

case "${1:-}" in
deps)
	deps "${2:-}"
	;;
build)
	deps
	build "$top/build"
	;;
run)
	deps
	build "$top/build"
	# Installed, the shipped config names the installed example pods file
	# and podmeta is in the install bindir: everything connectd reads, and
	# podmeta (run as `nobody` when connectd starts as root), is readable
	# by every user wherever this tree is.
	as_root make -s -C "$top/build" install
	prefix=$(sed -n 's/^prefix = //p' "$top/build/Makefile")
	echo "build.sh: running $prefix/sbin/connectd -f $prefix/etc/connectd/connectd.conf"
	PATH="$prefix/bin:$PATH" exec "$prefix/sbin/connectd" \
	    -f "$prefix/etc/connectd/connectd.conf"
	;;
test)
	deps test
	jobs=-j"$(nproc)"
	# The image phase's debootstrap base (minutes of download and dpkg,
	# little CPU) is made meanwhile, once per machine; t/81 waits for it
	base_log=$(mktemp)
	python3 -c 'import sys; sys.path.insert(0, "t/lib")
import docker_util as d; print(d.debian_base())' >"$base_log" 2>&1 &
	base_pid=$!
	# the release tarball builds with -Werror and passes the suite
	if build "$top/build" --enable-werror; then
		phase "make distcheck (the suite, -Werror)" "$top/build" distcheck $jobs \
		    distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror
	else
		echo "== make distcheck: the -Werror build failed"; FAILED=$((FAILED + 1))
	fi
	# the relay, policy and log scenarios again with `workers 2` and
	# `relay_splice_min 0` in
	# every conf (t/local.mk's check-variant): the several-loop build
	if [ -f "$top/build/Makefile" ]; then
		phase "the suite variant (workers 2, splice from byte 0)" "$top/build" variant $jobs \
		    check-variant
	else
		echo "== the suite variant: no configured tree"; FAILED=$((FAILED + 1))
	fi
	if build "$top/build-asan" --enable-werror --enable-sanitizers CC=clang
	then
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		    phase "the suite under ASan+UBSan" "$top/build-asan" check $jobs \
		    check-sanitized
	else
		echo "== ASan+UBSan: the build failed"; FAILED=$((FAILED + 1))
	fi
	# libFuzzer, every harness for FUZZ_SECONDS (10: the suite's time,
	# with the workers variant and issue 15's scenarios, stays inside
	# CI's 25 minutes on 2 cores from a fresh machine; fuzz longer with
	# FUZZ_SECONDS=N): one test point each
	if [ -f "$top/build/Makefile" ]; then
		FUZZ_SECONDS=${FUZZ_SECONDS:-10} phase "fuzz" "$top/build" fuzz \
		    check TESTS=fuzz/run.sh TEST_SUITE_LOG=fuzz-suite.log
	else
		echo "== fuzz: no configured tree"; FAILED=$((FAILED + 1))
	fi
	# the Dockerfile built and the image run (t/81, skipped with its
	# reason where no dockerd of its own can run); minutes, so not in
	# make check
	wait "$base_pid" || { echo "  (the base, made ahead, failed; t/81 tries again)"
		tail -n 5 "$base_log" | sed 's/^/  | /'; }
	rm -f "$base_log"
	if [ -f "$top/build/Makefile" ]; then
		phase "the container image" "$top/build" image check-image
	else
		echo "== the container image: no configured tree"; FAILED=$((FAILED + 1))
	fi
	[ "$SKIPPED" = 0 ] || echo "($SKIPPED skipped, not counted)"
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" = 0 ]
	;;
*)
	sed -n '2,11s/^# \{0,1\}//p' "$0"
	exit 2
	;;
esac
