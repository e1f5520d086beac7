# The suite is TAP, run by prove; every test is one scenario in t/*.t.
EXTRA_DIST += t
TEST_ENV = CONNECTD=$(abs_top_builddir)/connectd/connectd \
	PODMETA=$(abs_top_builddir)/podmeta/podmeta \
	T_SRCDIR=$(abs_top_srcdir)/t \
	PYTHONDONTWRITEBYTECODE=1
PROVE_FLAGS ?= -j2
check-local: all
	cd $(abs_top_srcdir)/t && $(TEST_ENV) $(PROVE) $(PROVE_FLAGS) --exec $(PYTHON3) *.t
