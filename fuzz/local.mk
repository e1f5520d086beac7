# libFuzzer harnesses are built by fuzz/run.sh with clang, outside automake.
EXTRA_DIST += fuzz

# fuzz/run.sh prints TAP, one test point per harness; it is not part of
# make check, but `make check TESTS=fuzz/run.sh` (FUZZ_SECONDS=N in the
# environment) runs it through the same driver, with its summary.
TEST_EXTENSIONS += .sh
SH_LOG_DRIVER = $(TAP_DRIVER)
SH_LOG_COMPILER = $(SHELL)
