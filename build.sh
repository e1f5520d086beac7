#!/bin/sh
# build.sh: install dependencies, build, run connectd, or run the whole test suite.
#   ./build.sh deps    install the Debian packages (needs root or sudo)
#   ./build.sh build   configure and build in ./build (out of tree)
#   ./build.sh run     deps + build, then connectd in the foreground on conf/connectd.conf
#   ./build.sh test    deps + build with -Werror, make distcheck (which runs the
#                      suite), the suite under ASan+UBSan, and a short libFuzzer
#                      run of every harness
set -eu
cd "$(dirname "$0")"
top=$(pwd)

BUILD_DEPS="build-essential autoconf automake libtool pkg-config clang
	libev-dev libcurl4-openssl-dev libjansson-dev libpcre2-dev libc-ares-dev libyaml-dev"
RUN_DEPS="ca-certificates"
# pkg:cmd means: install pkg unless cmd is already on PATH from elsewhere
TEST_DEPS="python3 perl jq curl openssl netcat-openbsd iproute2 squid tinyproxy
	skopeo docker-registry git kubernetes-client:kubectl man-db groff-base
	util-linux libclang-rt-dev"

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

build() {
	dir=$1; shift
	[ -x "$top/configure" ] || (cd "$top" && autoreconf -fi)
	mkdir -p "$dir"
	(cd "$dir" && { [ -f Makefile ] || "$top/configure" -q "$@"; } &&
	    make -s -j"$(nproc)")
}

# prove's summary per phase, added up into one closing line
PASSED=0
FAILED=0
suite() {
	dir=$1; name=$2; target=$3
	echo "== $name"
	log=$dir/prove.log
	set +e
	(cd "$dir" && make -s $target) >"$log" 2>&1
	rc=$?
	set -e
	sed -n '/^[0-9][0-9]-.*\.t \.\./,/^Result:/p' "$log"
	p=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$log" | tail -1)
	f=$(grep -c '^not ok' "$log" || true)
	if [ "$rc" = 0 ] && grep -q '^Result: PASS' "$log"; then
		PASSED=$((PASSED + ${p:-0}))
	else
		[ "$rc" = 0 ] || tail -30 "$log"
		FAILED=$((FAILED + ${f:-0} + 1))
		PASSED=$((PASSED + ${p:-0} - ${f:-0}))
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
	# The shipped config runs podmeta from PATH, with its pods file named
	# relative to the working directory.  Started as root, connectd becomes
	# `nobody` (cache_effective_user) before it starts podmeta, and a tree
	# under a 0700 home is out of nobody's reach: then those two files are
	# staged where nobody can read them.
	run_dir=$top
	if [ "$(id -u)" = 0 ] && ! setpriv --reuid=nobody --regid=nogroup \
	    --clear-groups test -x "$top/build/podmeta/podmeta" -a \
	    -r "$top/conf/pods.example.json" 2>/dev/null; then
		run_dir=$(mktemp -d /tmp/connectd-run.XXXXXX)
		mkdir -p "$run_dir/build/podmeta" "$run_dir/conf"
		cp "$top/build/podmeta/podmeta" "$run_dir/build/podmeta/"
		cp "$top/conf/pods.example.json" "$run_dir/conf/"
		chmod -R a+rX "$run_dir"
		echo "build.sh: nobody cannot read $top; podmeta runs from $run_dir"
	fi
	cd "$run_dir"
	PATH="$run_dir/build/podmeta:$PATH" exec "$top/build/connectd/connectd" \
	    -f "$top/conf/connectd.conf"
	;;
test)
	deps test
	build "$top/build" --enable-werror
	# distcheck: the tarball builds with -Werror and passes the suite
	suite "$top/build" "make distcheck (the whole suite, -Werror)" \
	    "distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror"
	build "$top/build-asan" --enable-werror --enable-sanitizers CC=clang
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    suite "$top/build-asan" "the suite under ASan+UBSan" check
	if [ -x "$top/fuzz/run.sh" ]; then
		echo "== fuzz"
		if "$top/fuzz/run.sh" "${FUZZ_SECONDS:-60}"; then
			PASSED=$((PASSED + 1))
		else
			FAILED=$((FAILED + 1))
		fi
	fi
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" = 0 ]
	;;
*)
	sed -n '2,8s/^# \{0,1\}//p' "$0"
	exit 2
	;;
esac
