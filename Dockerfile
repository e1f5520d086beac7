# Dockerfile: connectd and podmeta on Debian 12, for a Kubernetes cluster.
#
#   docker build -t connectd .
#
# The build stage installs build.sh's BUILD_DEPS (gcc, libc6-dev and
# make of build-essential; no clang: no sanitizers, no fuzzers), builds
# with -Werror and installs into /out.  The runtime stage holds the
# shared libraries the two programs load (the Debian packages that own
# their ELF NEEDED entries, found in the build stage), connectd, podmeta,
# and conf/connectd-kubernetes.conf as /etc/connectd/connectd.conf:
# listen on 3128 and metrics_port 9128, podmeta in-cluster (the pod's
# service account), JSON lines on standard output.  connectd never
# terminates TLS: the image holds no CA certificate, and no client needs
# to trust one (podmeta trusts the API server by the service account's).
#
# It runs as uid 65532 and needs no shell, no capability (both ports are
# above 1024) and no writable file: run it with a read-only root file
# system.  connectd starts podmeta with posix_spawnp(), not through
# /bin/sh.  t/81-image.t (make check-image) builds and runs it.

FROM debian:bookworm-slim AS build
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update --error-on=any \
 && apt-get install -y -q --no-install-recommends \
	gcc libc6-dev make autoconf automake libtool pkg-config \
	libev-dev libcurl4-openssl-dev libjansson-dev libpcre2-dev \
	libc-ares-dev libyaml-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
COPY . /src
# The kubernetes conf replaces the lab one that make install puts in
# /etc/connectd, and the example pods file (a lab's) goes.  The runtime
# packages are those that own the libraries the binaries load (a library
# that no package owns fails the build).
RUN set -e; cd /src; autoreconf -fi; mkdir build; cd build; \
	../configure -q --enable-werror --prefix=/usr --sysconfdir=/etc \
	    --localstatedir=/var; \
	make -s -j"$(nproc)"; \
	make -s install-strip DESTDIR=/out; \
	install -m 644 ../conf/connectd-kubernetes.conf /out/etc/connectd/connectd.conf; \
	rm /out/etc/connectd/pods.example.json; \
	ma=$(gcc -print-multiarch); \
	libs=$(readelf -d /out/usr/sbin/connectd /out/usr/bin/podmeta \
	    /out/usr/libexec/connectd/basic_file_auth | \
	    sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p' | sort -u); \
	[ -n "$libs" ]; \
	for lib in $libs; do \
		owner=$(dpkg -S "*/$ma/$lib"); echo "${owner%%:*}" >> /runtime-packages.all; \
	done; \
	sort -u /runtime-packages.all > /runtime-packages; \
	cat /runtime-packages

FROM debian:bookworm-slim
COPY --from=build /runtime-packages /usr/share/doc/connectd/runtime-packages
# The uid (65532, the usual non-root uid of minimal images) has a name,
# for ps and for whatever calls getpwuid().
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update --error-on=any \
 && apt-get install -y -q --no-install-recommends \
	$(cat /usr/share/doc/connectd/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt \
	/var/log/dpkg.log \
 && groupadd --system --gid 65532 connectd \
 && useradd --system --uid 65532 --gid 65532 --no-create-home \
	--home-dir /nonexistent --shell /usr/sbin/nologin connectd
COPY --from=build /out/ /
USER 65532:65532
# The shipped conf parses, as the user that runs it, and podmeta's
# libraries all load.
RUN connectd -t -f /etc/connectd/connectd.conf && podmeta --version
EXPOSE 3128 9128
ENTRYPOINT ["/usr/sbin/connectd", "-f", "/etc/connectd/connectd.conf"]

# Last, so that a new revision rebuilds nothing above.  No license file
# and no public address are in the tree yet: pass them when there are.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="connectd" \
	org.opencontainers.image.description="HTTP CONNECT proxy that never terminates TLS and logs one JSON line per tunnel, naming the Kubernetes pod that opened it (podmeta)" \
	org.opencontainers.image.version="$VERSION" \
	org.opencontainers.image.revision="$REVISION" \
	org.opencontainers.image.source="$SOURCE" \
	org.opencontainers.image.licenses="$LICENSES"
