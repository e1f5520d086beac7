# libFuzzer harnesses are built by fuzz/run.sh with clang, outside automake.
EXTRA_DIST += fuzz
