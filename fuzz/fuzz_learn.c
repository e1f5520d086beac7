/* fuzz_learn.c: libFuzzer harness for connectd-learn: input lines through the reader, the parser, the tables and both outputs */
/* fuzz-libs: jansson */
/* fuzz-options: -max_len=20000 */
/*
 * The input is connectd-learn's input: the first byte picks options
 * (--collapse 0-3, --json, --include-denied), the rest is read as a file
 * of lines with --max-line 1024 and --max-entries 50.  Checked: no crash,
 * leak or UB (the sanitizers), the cap holds, every line read is counted
 * as used, skipped, filtered or over the cap, and every workload has a
 * destination.  Output goes to /dev/null.
 */
#define LEARN_FUZZ 1
#include "../learn/learn.c"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(x)	do { if (!(x)) { fprintf(stderr, "%s:%d: %s\n", \
			    __FILE__, __LINE__, #x); abort(); } } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 init;
	struct workload	*w;
	FILE		*f;
	uint64_t	 sk = 0;
	int		 i;

	if (!init) {
		CHECK(freopen("/dev/null", "w", stdout) != NULL);
		init = 1;
	}
	if (size < 1)
		return 0;
	L.collapse = data[0] & 3;
	L.json = (data[0] >> 2) & 1;
	L.include_denied = (data[0] >> 3) & 1;
	L.max_entries = 50;
	L.max_line = 1024;
	L.since = INT64_MIN;
	L.until = INT64_MAX;
	L.ns = NULL;
	L.wlast = &L.wfirst;
	if (size == 1)
		return 0;
	f = fmemopen((void *)(data + 1), size - 1, "r");
	CHECK(f != NULL);
	read_file(f, "fuzz");
	fclose(f);
	report();
	for (i = 0; i < SK_N; i++)
		sk += L.skipped[i];
	CHECK(L.dh.ht_count <= L.max_entries);
	CHECK(L.wh.ht_count <= L.dh.ht_count);
	CHECK(L.used + sk + L.filtered <= L.read);
	CHECK(L.used + sk + L.filtered + L.over_cap >= L.read);
	for (w = L.wfirst; w != NULL; w = w->w_next)
		CHECK(w->w_ndests > 0 && w->w_lines > 0);
	learn_reset();
	return 0;
}
