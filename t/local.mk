# The suite is TAP: every t/*.t is one scenario (Python), t/unit-lib is a
# C unit test of lib/; automake's TAP driver runs each file and counts its
# test points (make check TESTS=t/01-curl-tls.t runs one file).
EXTRA_DIST += $(T_SCENARIOS) $(T_IMAGE) t/lib t/fixtures

# Every t/*.t, in order: t/00-suite.t fails when one is missing here.
T_SCENARIOS = \
	t/00-suite.t \
	t/01-curl-tls.t \
	t/02-curl-plain.t \
	t/03-bytes.t \
	t/04-half-close.t \
	t/05-ipv6-origin.t \
	t/06-skopeo.t \
	t/07-bad-input.t \
	t/08-squid-compare.t \
	t/09-signals.t \
	t/10-timeouts.t \
	t/100-k8sapi-namespaces.t \
	t/101-policy-e2e.t \
	t/11-dns.t \
	t/12-manpages.t \
	t/13-reset.t \
	t/14-many.t \
	t/15-log-stall.t \
	t/16-conf.t \
	t/17-logformat.t \
	t/20-k8sapi-kubectl.t \
	t/21-podmeta-fixture.t \
	t/22-podmeta-churn.t \
	t/23-podmeta-resilience.t \
	t/24-podmeta-scale.t \
	t/25-podmeta-protocol.t \
	t/26-podmeta-badapi.t \
	t/27-podmeta-squid.t \
	t/28-podmeta-kubeconfig.t \
	t/30-helper-pods.t \
	t/31-helper-k8sapi.t \
	t/32-helper-churn.t \
	t/33-helper-killed.t \
	t/34-helper-slow.t \
	t/35-helper-garbage.t \
	t/36-helper-perl.t \
	t/37-helper-squid.t \
	t/38-helper-stanza.t \
	t/39-helper-reload.t \
	t/40-acl-types.t \
	t/41-acl-rules.t \
	t/42-default-policy.t \
	t/43-limits.t \
	t/44-emfile.t \
	t/45-acl-external.t \
	t/46-credentials.t \
	t/47-slowloris.t \
	t/48-concurrency.t \
	t/49-privdrop.t \
	t/50-credentials-target.t \
	t/51-limit-refusals.t \
	t/52-log-full-disk.t \
	t/53-log-reopen-privdrop.t \
	t/54-to-self.t \
	t/55-conf-scale.t \
	t/56-head-trickle.t \
	t/57-reload-rebind.t \
	t/58-podmeta-file-reload.t \
	t/59-podmeta-srcport.t \
	t/60-forward-curl.t \
	t/61-forward-hostile.t \
	t/62-forward-squid.t \
	t/63-forward-apt.t \
	t/64-forward-pip.t \
	t/65-forward-dockerd.t \
	t/66-short-writes.t \
	t/70-log-tcp.t \
	t/71-log-udp.t \
	t/72-log-syslog.t \
	t/74-metrics.t \
	t/75-health.t \
	t/76-empty-connections.t \
	t/77-shutdown-drain.t \
	t/78-bigquery-schema.t \
	t/79-interim-records.t \
	t/80-fluent-bit-parsers.t \
	t/83-deploy-schemas.t \
	t/84-deploy-conf.t \
	t/85-deploy-rbac.t \
	t/86-deploy-consistency.t \
	t/87-systemd-unit.t \
	t/88-logrotate.t \
	t/89-systemd-run.t \
	t/90-tls-peek.t \
	t/91-tls-acl.t \
	t/92-splice.t \
	t/93-workers.t \
	t/94-tls-hold.t \
	t/95-proxy-user.t \
	t/96-proxy-auth.t \
	t/97-policy-podmeta.t \
	t/98-policy-connectd.t \
	t/99-policy-learn.t

# Scenarios too slow for every make check, each with its own target:
# t/81 builds the container image (debootstrap once per machine, apt and
# a compile in docker build: minutes) and runs it.  make check-image runs
# it through the same driver; ./build.sh test runs that in its "image"
# phase.  t/00-suite.t counts these as listed.
T_IMAGE = t/81-image.t

check-image:
	$(MAKE) $(AM_MAKEFLAGS) check TESTS='$(T_IMAGE)' TEST_SUITE_LOG=image-suite.log
.PHONY: check-image

# The relay, policy and log scenarios again with directives added to
# every test conf that lacks them ($CONNECTD_TEST_CONF, harness.py's
# with_test_conf()): by default `workers 2`, the several-loop build of
# the same code.  make check-variant VARIANT_CONF='workers 2; ...'.
VARIANT_CONF = workers 2; relay_splice_min 0
T_VARIANT = t/01-curl-tls.t t/03-bytes.t t/04-half-close.t t/10-timeouts.t \
	t/13-reset.t t/14-many.t t/15-log-stall.t t/17-logformat.t \
	t/30-helper-pods.t t/40-acl-types.t t/41-acl-rules.t t/43-limits.t \
	t/45-acl-external.t t/48-concurrency.t t/51-limit-refusals.t \
	t/60-forward-curl.t t/61-forward-hostile.t t/70-log-tcp.t \
	t/71-log-udp.t t/74-metrics.t t/77-shutdown-drain.t \
	t/79-interim-records.t t/90-tls-peek.t t/91-tls-acl.t t/92-splice.t \
	t/94-tls-hold.t t/96-proxy-auth.t

# Scenarios that run none of the project's programs (the test API server
# with kubectl alone, the manifests against their schemas, the list of
# scenarios): the ASan+UBSan phase (./build.sh test) leaves them out, as
# a sanitized build changes nothing they run.
T_NO_PROGRAM = t/00-suite.t t/20-k8sapi-kubectl.t t/83-deploy-schemas.t \
	t/100-k8sapi-namespaces.t

check-sanitized:
	@tests=; for t in $(TESTS); do \
	    case " $(T_NO_PROGRAM) " in *" $$t "*) ;; *) tests="$$tests $$t" ;; esac; \
	done; \
	$(MAKE) $(AM_MAKEFLAGS) check TESTS="$$tests"
.PHONY: check-sanitized

check-variant:
	CONNECTD_TEST_CONF='$(VARIANT_CONF)' $(MAKE) $(AM_MAKEFLAGS) check \
	    TESTS='$(T_VARIANT)' TEST_SUITE_LOG=variant-suite.log
.PHONY: check-variant

check_PROGRAMS += t/unit-lib
t_unit_lib_SOURCES = t/unit-lib.c t/tap.h
t_unit_lib_LDADD = lib/libshared.a -lm

# t/unit-tlshello: lib/tlshello.c against t/fixtures/ja4/ (JA4 vectors)
check_PROGRAMS += t/unit-tlshello
t_unit_tlshello_SOURCES = t/unit-tlshello.c t/tap.h
t_unit_tlshello_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS)
t_unit_tlshello_LDADD = lib/libtlshello.a lib/libshared.a $(JANSSON_LIBS) $(CRYPTO_LIBS)

TESTS = $(T_SCENARIOS) t/unit-lib t/unit-tlshello
TEST_EXTENSIONS = .t
TAP_DRIVER = env AM_TAP_AWK='$(AWK)' $(SHELL) $(top_srcdir)/build-aux/tap-driver.sh
T_LOG_DRIVER = $(TAP_DRIVER)
T_LOG_COMPILER = $(PYTHON3)
LOG_DRIVER = $(TAP_DRIVER)
AM_TESTS_ENVIRONMENT = \
	CONNECTD='$(abs_top_builddir)/connectd/connectd'; export CONNECTD; \
	PODMETA='$(abs_top_builddir)/podmeta/podmeta'; export PODMETA; \
	BASIC_FILE_AUTH='$(abs_top_builddir)/auth/basic_file_auth'; export BASIC_FILE_AUTH; \
	CONNECTD_LEARN='$(abs_top_builddir)/learn/connectd-learn'; export CONNECTD_LEARN; \
	T_SRCDIR='$(abs_top_srcdir)/t'; export T_SRCDIR; \
	T_LISTED='$(T_SCENARIOS)'; export T_LISTED; \
	T_OWN_TARGET='$(T_IMAGE)'; export T_OWN_TARGET; \
	PYTHONDONTWRITEBYTECODE=1; export PYTHONDONTWRITEBYTECODE;
