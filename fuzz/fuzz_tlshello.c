/* fuzz_tlshello.c: libFuzzer harness for the passive TLS hello reader and JA4 (lib/tlshello.c) */
/* fuzz-libs: libcrypto */
/* fuzz-options: -max_len=20000 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tlshello.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/*
 * The input: one control byte, then what one side sends first.  Bit 0
 * of the control byte picks the side (1: the server); the other bits,
 * the size of the reads (0: all at once) and of the records the hello
 * is re-split into.
 */

/* Feed p[0..n) in reads of step bytes (0: all at once), then end it. */
static void
run(struct tlshello *st, enum tlshello_dir dir, const uint8_t *p, size_t n,
    size_t step, struct buf *ja4r)
{
	size_t			 off, k;
	enum tlshello_status	 s = TLSHELLO_MORE, was;

	tlshello_init(st, dir);
	st->th_ja4_r = ja4r;
	if (step == 0)
		s = tlshello_feed(st, p, n);
	for (off = 0; step != 0 && off < n; off += k) {
		k = n - off < step ? n - off : step;
		was = st->th_status;
		s = tlshello_feed(st, p + off, k);
		/* once decided, it stays */
		assert(was == TLSHELLO_MORE || s == was);
	}
	assert(s == st->th_status);
	if (s != TLSHELLO_MORE)
		assert(st->th_msg.b_data == NULL);
	s = tlshello_end(st);
	assert(s != TLSHELLO_MORE && st->th_msg.b_data == NULL);
	assert(st->th_proto != TLSHELLO_PROTO_NONE || s == TLSHELLO_NOTTLS);
	assert((s == TLSHELLO_NOTTLS) ==
	    (st->th_proto != TLSHELLO_PROTO_TLS));
}

/* The fields of a DONE hello are sane. */
static void
check_done(const struct tlshello *st)
{
	const uint8_t	*a;
	size_t		 len, sum = 0, i;
	unsigned	 n;

	assert(st->th_records >= 1 && st->th_records <= TLSHELLO_MAX_RECORDS);
	assert(st->th_hello_bytes <= 4 + TLSHELLO_MAX_BYTES);
	assert(st->th_sni_len <= TLSHELLO_SNI_MAX &&
	    st->th_sni[st->th_sni_len] == '\0');
	assert(st->th_sni_len == 0 || st->th_has_sni);
	for (n = 0; (a = tlshello_alpn(st, n, &len)) != NULL; n++) {
		assert(len >= 1 && a >= st->th_alpn &&
		    a + len <= st->th_alpn + st->th_alpn_len);
		sum += 1 + len;
	}
	assert(n == st->th_alpn_count && sum == st->th_alpn_len);
	assert(st->th_nversions <= TLSHELLO_VERSIONS_MAX);
	for (i = 0; i < st->th_nversions; i++)
		assert(!tlshello_grease(st->th_versions[i]));
	assert(!st->th_pq || tlshello_pq_group(st->th_pq_group));
	if (st->th_dir == TLSHELLO_CLIENT && st->th_ja4[0] != '\0') {
		assert(strlen(st->th_ja4) == TLSHELLO_JA4_LEN);
		assert(st->th_ja4[0] == 't' && st->th_ja4[10] == '_' &&
		    st->th_ja4[23] == '_');
		assert(st->th_ja4[3] == (st->th_has_sni ? 'd' : 'i'));
		for (i = 11; i < TLSHELLO_JA4_LEN; i++)
			assert(i == 23 || (st->th_ja4[i] >= '0' &&
			    st->th_ja4[i] <= '9') || (st->th_ja4[i] >= 'a' &&
			    st->th_ja4[i] <= 'f'));
	}
}

/* The two readers saw the same stream: they agree on everything. */
static void
check_same(const struct tlshello *a, const struct tlshello *b)
{
	assert(a->th_status == b->th_status && a->th_proto == b->th_proto);
	if (a->th_status != TLSHELLO_DONE)
		return;
	assert(strcmp(a->th_ja4, b->th_ja4) == 0);
	assert(a->th_sni_len == b->th_sni_len &&
	    memcmp(a->th_sni, b->th_sni, a->th_sni_len) == 0);
	assert(a->th_alpn_len == b->th_alpn_len &&
	    memcmp(a->th_alpn, b->th_alpn, a->th_alpn_len) == 0);
	assert(a->th_version == b->th_version && a->th_cipher == b->th_cipher &&
	    a->th_hrr == b->th_hrr && a->th_ech == b->th_ech &&
	    a->th_pq == b->th_pq && a->th_hello_bytes == b->th_hello_bytes);
}

/*
 * The hello message of a DONE stream, out of its records, into msg.
 * Only handshake records precede its end (the reader said so).
 */
static void
hello_message(const uint8_t *p, size_t n, size_t want, struct buf *msg)
{
	size_t	 off = 0, len;

	while (msg->b_len < want && off + 5 <= n) {
		len = (size_t)p[off + 3] << 8 | p[off + 4];
		assert(off + 5 + len <= n);
		len = len < want - msg->b_len ? len : want - msg->b_len;
		assert(buf_add(msg, p + off + 5, len) == 0);
		off += 5 + (size_t)(p[off + 3] << 8 | p[off + 4]);
	}
	assert(msg->b_len == want);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlshello		 whole, inreads, split;
	struct buf		 r1 = BUF_INITIALIZER(65536);
	struct buf		 r2 = BUF_INITIALIZER(65536);
	struct buf		 msg = BUF_INITIALIZER(0), rec = BUF_INITIALIZER(0);
	enum tlshello_dir	 dir;
	uint8_t			 hdr[5] = { 22, 3, 1, 0, 0 };
	size_t			 step, k, off, len, recs = 0;

	if (size < 1)
		return 0;
	dir = data[0] & 1 ? TLSHELLO_SERVER : TLSHELLO_CLIENT;
	step = data[0] >> 1;
	data++;
	size--;

	run(&whole, dir, data, size, 0, &r1);
	run(&inreads, dir, data, size, step == 0 ? 1 : step, &r2);
	check_same(&whole, &inreads);
	if (whole.th_status != TLSHELLO_DONE) {
		assert(whole.th_ja4[0] == '\0');
		goto out;
	}
	check_done(&whole);
	if (dir == TLSHELLO_CLIENT && whole.th_ja4[0] != '\0')
		assert(r1.b_data != NULL && r2.b_data != NULL &&
		    strcmp(r1.b_data, r2.b_data) == 0);

	/* re-split into records of k bytes: the same hello, or too many */
	hello_message(data, size, whole.th_hello_bytes, &msg);
	k = step == 0 ? 16384 : step;
	for (off = 0; off < msg.b_len; off += len, recs++) {
		len = msg.b_len - off < k ? msg.b_len - off : k;
		hdr[3] = (uint8_t)(len >> 8);
		hdr[4] = (uint8_t)len;
		assert(buf_add(&rec, hdr, 5) == 0);
		assert(buf_add(&rec, msg.b_data + off, len) == 0);
	}
	run(&split, dir, (const uint8_t *)rec.b_data, rec.b_len, 1, NULL);
	if (recs <= TLSHELLO_MAX_RECORDS)
		check_same(&whole, &split);
	else
		assert(split.th_status == TLSHELLO_TOOBIG);
out:
	buf_free(&r1);
	buf_free(&r2);
	buf_free(&msg);
	buf_free(&rec);
	return 0;
}
