/*
 * unit-tlshello.c: unit tests of lib/tlshello.h (the passive TLS hello reader and JA4), as TAP.
 *
 * Every vector of t/fixtures/ja4/vectors.json, whole, a byte at a time,
 * in random reads and re-split into records of every size; hellos built
 * here whose every length lies; the bounds; what is not TLS.  The
 * fixtures are found under $T_SRCDIR (make check sets it), else ./t.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "tlshello.h"
#include "util.h"

#include "tap.h"

/* A deterministic generator (xorshift32), so that a failure repeats. */
static uint32_t	 rnd_state = 2463534242u;

static uint32_t
rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

static const char *
fixture_dir(void)
{
	static char	 dir[4096];
	const char	*t = getenv("T_SRCDIR");

	snprintf(dir, sizeof(dir), "%s/fixtures/ja4", t != NULL ? t : "t");
	return dir;
}

/* The whole file dir/name into b (unbounded: fixtures are small). */
static int
read_fixture(const char *name, struct buf *b)
{
	char	 path[4200], chunk[4096];
	FILE	*f;
	size_t	 n;

	buf_init(b, 0);
	snprintf(path, sizeof(path), "%s/%s", fixture_dir(), name);
	if ((f = fopen(path, "rb")) == NULL)
		return -1;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_add(b, chunk, n) == -1)
			break;
	fclose(f);
	return b->b_data != NULL ? 0 : -1;
}

/*
 * Feed p[0..n) to a fresh reader in reads of step bytes (0: all at once,
 * -1: random sizes), then end the stream.  The status before the end is
 * in *before if not NULL.
 */
static enum tlshello_status
feed(struct tlshello *st, enum tlshello_dir dir, const uint8_t *p, size_t n,
    int step, struct buf *ja4r, enum tlshello_status *before)
{
	size_t	 off = 0, k;

	tlshello_init(st, dir);
	st->th_ja4_r = ja4r;
	if (step == 0)
		(void)tlshello_feed(st, p, n);
	while (step != 0 && off < n) {
		k = step > 0 ? (size_t)step : 1 + rnd() % 700;
		if (k > n - off)
			k = n - off;
		(void)tlshello_feed(st, p + off, k);
		off += k;
	}
	if (before != NULL)
		*before = st->th_status;
	return tlshello_end(st);
}

/*
 * The handshake message the records of p carry: the bodies of its
 * handshake records up to the end of the first message.  Returns 0, or
 * -1 if p does not hold one whole.
 */
static int
hello_message(const uint8_t *p, size_t n, struct buf *msg)
{
	size_t	 off = 0, len, want = 0;

	buf_init(msg, 0);
	while (off + 5 <= n && p[off] == 22) {
		len = (size_t)p[off + 3] << 8 | p[off + 4];
		if (off + 5 + len > n)
			return -1;
		(void)buf_add(msg, p + off + 5, len);
		off += 5 + len;
		if (msg->b_len >= 4) {
			want = 4 + ((size_t)(uint8_t)msg->b_data[1] << 16 |
			    (size_t)(uint8_t)msg->b_data[2] << 8 |
			    (uint8_t)msg->b_data[3]);
			if (msg->b_len >= want) {
				buf_truncate(msg, want);
				return 0;
			}
		}
	}
	return -1;
}

/* msg cut into records of k bytes each into out; their number. */
static size_t
resplit(const uint8_t *msg, size_t n, size_t k, struct buf *out)
{
	uint8_t	 hdr[5] = { 22, 3, 1, 0, 0 };
	size_t	 off, len, recs = 0;

	buf_reset(out);
	for (off = 0; off < n; off += len, recs++) {
		len = n - off < k ? n - off : k;
		hdr[3] = (uint8_t)(len >> 8);
		hdr[4] = (uint8_t)len;
		(void)buf_add(out, hdr, 5);
		(void)buf_add(out, msg + off, len);
	}
	return recs;
}

/* An ALPN value as vectors.json writes it: \xNN for what is not printable. */
static void
alpn_text(const uint8_t *p, size_t n, struct buf *out)
{
	char	 x[5];
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
			(void)buf_addc(out, (char)p[i]);
			continue;
		}
		snprintf(x, sizeof(x), "\\x%02x", p[i]);
		(void)buf_addstr(out, x);
	}
}

/* The fields of st against a vector: sni, alpn, versions, ech; "" if all agree. */
static void
check_fields(const struct tlshello *st, json_t *v, struct buf *why)
{
	json_t		*sni = json_object_get(v, "sni"), *alpn, *vers, *e;
	struct buf	 t = BUF_INITIALIZER(0);
	const uint8_t	*a;
	size_t		 i, len;

	buf_reset(why);
	if (json_is_string(sni) ? st->th_sni_len == 0 ||
	    strcmp(st->th_sni, json_string_value(sni)) != 0 :
	    st->th_sni_len != 0)
		(void)buf_addstr(why, " sni");
	alpn = json_object_get(v, "alpn");
	if (json_array_size(alpn) != st->th_alpn_count)
		(void)buf_addstr(why, " alpn count");
	json_array_foreach(alpn, i, e) {
		buf_reset(&t);
		(void)buf_add(&t, "", 0);	/* allocated, "" */
		if ((a = tlshello_alpn(st, (unsigned)i, &len)) == NULL)
			break;
		alpn_text(a, len, &t);
		if (strcmp(t.b_data, json_string_value(e)) != 0)
			(void)buf_addstr(why, " alpn value");
	}
	vers = json_object_get(v, "versions");
	if (json_array_size(vers) != st->th_nversions)
		(void)buf_addstr(why, " versions count");
	json_array_foreach(vers, i, e)
		if (i < st->th_nversions &&
		    json_integer_value(e) != st->th_versions[i])
			(void)buf_addstr(why, " versions");
	if (json_is_true(json_object_get(v, "ech")) != (st->th_ech != 0))
		(void)buf_addstr(why, " ech");
	buf_free(&t);
}

/* ------------------------------------------------------------ vectors */

static void
test_vector(const char *name, json_t *v)
{
	struct tlshello		 st;
	struct buf		 bin, msg, rec, ja4r = BUF_INITIALIZER(4096), why;
	enum tlshello_status	 s, before;
	const char		*ja4 = json_string_value(json_object_get(v, "ja4"));
	const char		*raw = json_string_value(json_object_get(v, "ja4_r"));
	const uint8_t		*p;
	char			 label[256];
	size_t			 n, k, recs, bad_k = 0, nk = 0;
	int			 same;

	buf_init(&why, 0);
	buf_init(&rec, 0);
	if (!ok(read_fixture(name, &bin) == 0, "%s: read %s/%s", name,
	    fixture_dir(), name))
		return;
	p = (const uint8_t *)bin.b_data;
	n = bin.b_len;

	if (json_object_get(v, "error") != NULL) {
		/* rejected, whole and a byte at a time, never "done" */
		s = feed(&st, TLSHELLO_CLIENT, p, n, 0, NULL, &before);
		ok(s == TLSHELLO_MALFORMED && st.th_proto == TLSHELLO_PROTO_TLS &&
		    st.th_ja4[0] == '\0' && st.th_msg.b_data == NULL,
		    "%s: malformed (%s%s), no JA4, no buffer kept", name,
		    tlshello_status_name(before),
		    st.th_truncated ? ", then cut short" : "");
		same = feed(&st, TLSHELLO_CLIENT, p, n, 1, NULL, NULL) == s;
		ok(same && feed(&st, TLSHELLO_CLIENT, p, n, -1, NULL, NULL) == s,
		    "%s: the same a byte at a time and in random reads", name);
		buf_free(&bin);
		return;
	}

	s = feed(&st, TLSHELLO_CLIENT, p, n, 0, &ja4r, &before);
	snprintf(label, sizeof(label), "%s: whole: done, JA4 %s", name, ja4);
	if (!is_str(before == TLSHELLO_DONE ? st.th_ja4 :
	    tlshello_status_name(before), ja4, label))
		printf("#   status %s\n", tlshello_status_name(before));
	snprintf(label, sizeof(label), "%s: JA4_r", name);
	is_str(ja4r.b_data != NULL ? ja4r.b_data : "", raw, label);
	check_fields(&st, v, &why);
	ok(why.b_len == 0 && st.th_proto == TLSHELLO_PROTO_TLS &&
	    st.th_msg.b_data == NULL,
	    "%s: sni %s, %u alpn, %u versions, ech %d; no buffer kept%s%s",
	    name, st.th_sni_len ? st.th_sni : "(none)", st.th_alpn_count,
	    st.th_nversions, st.th_ech, why.b_len ? ": WRONG" : "",
	    why.b_len ? why.b_data : "");

	s = feed(&st, TLSHELLO_CLIENT, p, n, 1, NULL, &before);
	snprintf(label, sizeof(label), "%s: a byte at a time: the same JA4",
	    name);
	is_str(before == TLSHELLO_DONE ? st.th_ja4 :
	    tlshello_status_name(before), ja4, label);
	for (k = 0; k < 20; k++) {
		s = feed(&st, TLSHELLO_CLIENT, p, n, -1, NULL, &before);
		if (before != TLSHELLO_DONE || strcmp(st.th_ja4, ja4) != 0)
			break;
	}
	ok(k == 20, "%s: in random reads (20 runs): the same JA4", name);

	/*
	 * Re-split into records of 1..N bytes, fed a byte at a time: the
	 * same JA4 while it takes at most 64 records, too big beyond.
	 */
	if (ok(hello_message(p, n, &msg) == 0, "%s: the hello message is "
	    "whole in the file", name)) {
		for (k = 1; k <= msg.b_len; k++) {
			recs = resplit((const uint8_t *)msg.b_data, msg.b_len,
			    k, &rec);
			s = feed(&st, TLSHELLO_CLIENT, (const uint8_t *)rec.b_data,
			    rec.b_len, k < 64 ? 1 : (int)k, NULL, &before);
			nk++;
			if (recs <= TLSHELLO_MAX_RECORDS ?
			    before != TLSHELLO_DONE || strcmp(st.th_ja4, ja4) != 0 ||
			    st.th_records != recs :
			    before != TLSHELLO_TOOBIG) {
				if (bad_k == 0)
					printf("# records of %zu bytes (%zu): %s %s\n",
					    k, recs, tlshello_status_name(before),
					    st.th_ja4);
				bad_k++;
			}
		}
		ok(bad_k == 0, "%s: re-split into records of 1..%zu bytes: the "
		    "same JA4 up to 64 records, too big beyond (%zu splits)",
		    name, msg.b_len, nk);
		buf_free(&msg);
	}
	buf_free(&rec);
	buf_free(&bin);
	buf_free(&ja4r);
	buf_free(&why);
}

static void
test_vectors(void)
{
	char		 path[4200];
	json_error_t	 err;
	json_t		*root, *v;
	const char	*name;
	size_t		 good = 0;

	snprintf(path, sizeof(path), "%s/vectors.json", fixture_dir());
	root = json_load_file(path, 0, &err);
	if (!ok(json_is_object(root), "vectors.json loads from %s", path)) {
		printf("# %s\n", err.text);
		return;
	}
	json_object_foreach(root, name, v) {
		test_vector(name, v);
		good += json_object_get(v, "error") == NULL;
	}
	ok(good >= 25, "%zu vectors with a JA4 (of %zu)", good,
	    json_object_size(root));
	json_decref(root);
}

/* ------------------------------------------------------------ hellos built here */

/*
 * A ClientHello built field by field; every length field's offset is
 * noted (lens[]), with its width, so that a test can make it lie.
 */
struct hb {
	struct buf	 b;
	size_t		 open[16], openw[16];
	int		 depth;
	size_t		 lens[64], lensw[64];
	const char	*lensname[64];
	int		 nlens;
};

static void
hb_bytes(struct hb *h, const void *p, size_t n)
{
	(void)buf_add(&h->b, p, n);
}

static void
hb_u8(struct hb *h, unsigned v)
{
	uint8_t	 c = (uint8_t)v;

	hb_bytes(h, &c, 1);
}

static void
hb_u16(struct hb *h, unsigned v)
{
	hb_u8(h, v >> 8);
	hb_u8(h, v);
}

/* Open a vector whose length takes w bytes (1, 2 or 3). */
static void
hb_open(struct hb *h, size_t w, const char *name)
{
	h->open[h->depth] = h->b.b_len;
	h->openw[h->depth++] = w;
	h->lens[h->nlens] = h->b.b_len;
	h->lensw[h->nlens] = w;
	h->lensname[h->nlens++] = name;
	while (w-- > 0)
		hb_u8(h, 0);
}

static void
hb_close(struct hb *h)
{
	size_t	 at, w, len, i;

	h->depth--;
	at = h->open[h->depth];
	w = h->openw[h->depth];
	len = h->b.b_len - at - w;
	for (i = 0; i < w; i++)
		h->b.b_data[at + i] = (char)(len >> (8 * (w - 1 - i)));
}

/*
 * A TLS 1.3 ClientHello in one record: SNI, ALPN h2 and http/1.1,
 * supported_versions with GREASE, signature_algorithms, key_share with
 * group (a share of sharelen bytes), and padding to pad more bytes.
 */
static void
hb_client_hello(struct hb *h, uint16_t group, size_t sharelen, size_t pad)
{
	static const uint8_t	 random[32] = { 1, 2, 3 };
	size_t			 i;

	memset(h, 0, sizeof(*h));
	buf_init(&h->b, 0);
	hb_u8(h, 22);
	hb_u16(h, 0x0301);
	hb_open(h, 2, "record length");
	hb_u8(h, 1);
	hb_open(h, 3, "handshake length");
	hb_u16(h, 0x0303);
	hb_bytes(h, random, sizeof(random));
	hb_open(h, 1, "legacy_session_id length");
	hb_bytes(h, random, 32);
	hb_close(h);
	hb_open(h, 2, "cipher_suites length");
	hb_u16(h, 0x2a2a);	/* GREASE */
	hb_u16(h, 0x1301);
	hb_u16(h, 0x1302);
	hb_u16(h, 0xc02f);
	hb_close(h);
	hb_open(h, 1, "compression_methods length");
	hb_u8(h, 0);
	hb_close(h);
	hb_open(h, 2, "extensions length");

	hb_u16(h, 0x0000);
	hb_open(h, 2, "server_name extension length");
	hb_open(h, 2, "server_name_list length");
	hb_u8(h, 0);
	hb_open(h, 2, "host_name length");
	hb_bytes(h, "Example.COM", 11);
	hb_close(h);
	hb_close(h);
	hb_close(h);

	hb_u16(h, 0x0010);
	hb_open(h, 2, "ALPN extension length");
	hb_open(h, 2, "protocol_name_list length");
	hb_open(h, 1, "first ProtocolName length");
	hb_bytes(h, "h2", 2);
	hb_close(h);
	hb_open(h, 1, "second ProtocolName length");
	hb_bytes(h, "http/1.1", 8);
	hb_close(h);
	hb_close(h);
	hb_close(h);

	hb_u16(h, 0x002b);
	hb_open(h, 2, "supported_versions extension length");
	hb_open(h, 1, "versions length");
	hb_u16(h, 0x7a7a);
	hb_u16(h, 0x0304);
	hb_u16(h, 0x0303);
	hb_close(h);
	hb_close(h);

	hb_u16(h, 0x000d);
	hb_open(h, 2, "signature_algorithms extension length");
	hb_open(h, 2, "supported_signature_algorithms length");
	hb_u16(h, 0x0403);
	hb_u16(h, 0x0804);
	hb_close(h);
	hb_close(h);

	hb_u16(h, 0x0033);
	hb_open(h, 2, "key_share extension length");
	hb_open(h, 2, "client_shares length");
	hb_u16(h, 0x0a0a);	/* GREASE, as Chrome */
	hb_open(h, 2, "first key_exchange length");
	hb_u8(h, 0);
	hb_close(h);
	hb_u16(h, group);
	hb_open(h, 2, "second key_exchange length");
	for (i = 0; i < sharelen; i++)
		hb_u8(h, (unsigned)i);
	hb_close(h);
	hb_close(h);
	hb_close(h);

	if (pad > 0) {
		/* padding (RFC 7685) */
		hb_u16(h, 0x0015);
		hb_open(h, 2, "padding length");
		for (i = 0; i < pad; i++)
			hb_u8(h, 0);
		hb_close(h);
	}
	hb_close(h);	/* extensions */
	hb_close(h);	/* handshake */
	hb_close(h);	/* record */
}

static void
test_built(void)
{
	struct tlshello		 st;
	struct hb		 h;
	struct buf		 copy, msg, rec;
	enum tlshello_status	 s, before;
	char			 ja4[TLSHELLO_JA4_LEN + 1];
	const uint8_t		*a;
	size_t			 len, at, w, body, pad, recs;
	int			 i, d, bad;

	hb_client_hello(&h, 0x11ec, 1216, 0);
	s = feed(&st, TLSHELLO_CLIENT, (uint8_t *)h.b.b_data, h.b.b_len, 0,
	    NULL, &before);
	ok(before == TLSHELLO_DONE && st.th_pq && st.th_pq_group == 0x11ec &&
	    st.th_version == 0x0304 && st.th_legacy_version == 0x0303 &&
	    st.th_hello_bytes == h.b.b_len - 5 && st.th_records == 1,
	    "built: X25519MLKEM768 share (%zu bytes): pq, TLS 1.3 offered, "
	    "%zu hello bytes", h.b.b_len, st.th_hello_bytes);
	a = tlshello_alpn(&st, 1, &len);
	ok(st.th_sni_len == 11 && strcmp(st.th_sni, "Example.COM") == 0 &&
	    st.th_alpn_count == 2 && a != NULL && len == 8 &&
	    memcmp(a, "http/1.1", 8) == 0 && tlshello_alpn(&st, 2, &len) ==
	    NULL && st.th_nversions == 2 && st.th_versions[0] == 0x0304,
	    "built: SNI kept as sent, ALPN list, GREASE left out of versions");
	/* 3 ciphers, 5 extensions (GREASE out), h2 */
	ok(strncmp(st.th_ja4, "t13d0305h2_", 11) == 0 &&
	    strlen(st.th_ja4) == TLSHELLO_JA4_LEN,
	    "built: JA4 %s", st.th_ja4);
	memcpy(ja4, st.th_ja4, sizeof(ja4));
	buf_free(&h.b);

	hb_client_hello(&h, 0x001d, 32, 0);
	(void)feed(&st, TLSHELLO_CLIENT, (uint8_t *)h.b.b_data, h.b.b_len, 0,
	    NULL, &before);
	ok(before == TLSHELLO_DONE && !st.th_pq && strcmp(st.th_ja4, ja4) == 0,
	    "built: an x25519 share: no pq, the same JA4 (key shares are not in it)");
	buf_free(&h.b);
	ok(tlshello_pq_group(0x11ec) && tlshello_pq_group(0x11eb) &&
	    tlshello_pq_group(0x11ed) && tlshello_pq_group(0x0201) &&
	    tlshello_pq_group(0x6399) && !tlshello_pq_group(0x001d) &&
	    !tlshello_pq_group(0x0017), "tlshello_pq_group: ML-KEM and "
	    "Kyber hybrids, not x25519 or secp256r1");
	ok(tlshello_grease(0x0a0a) && tlshello_grease(0xfafa) &&
	    !tlshello_grease(0xeeee) && !tlshello_grease(0x0a1a) &&
	    !tlshello_grease(0x1a0a), "tlshello_grease: RFC 8701 values only");

	/* every length field lies by +1 and -1: never done */
	hb_client_hello(&h, 0x11ec, 64, 0);
	buf_init(&copy, 0);
	for (i = 0; i < h.nlens; i++) {
		at = h.lens[i];
		w = h.lensw[i];
		bad = 0;
		for (d = -1; d <= 1; d += 2) {
			uint32_t	 v = 0;
			size_t		 j;

			buf_reset(&copy);
			(void)buf_add(&copy, h.b.b_data, h.b.b_len);
			for (j = 0; j < w; j++)
				v = v << 8 | (uint8_t)copy.b_data[at + j];
			v = (uint32_t)((int64_t)v + d);
			for (j = 0; j < w; j++)
				copy.b_data[at + j] =
				    (char)(v >> (8 * (w - 1 - j)));
			s = feed(&st, TLSHELLO_CLIENT, (uint8_t *)copy.b_data,
			    copy.b_len, 0, NULL, &before);
			if (s != TLSHELLO_MALFORMED || before == TLSHELLO_DONE)
				bad++;
			if (feed(&st, TLSHELLO_CLIENT, (uint8_t *)copy.b_data,
			    copy.b_len, 1, NULL, NULL) != s)
				bad++;
		}
		ok(bad == 0, "lying length: %s +1 and -1: malformed (%s), "
		    "the same a byte at a time", h.lensname[i],
		    tlshello_status_name(s));
	}
	buf_free(&copy);

	/*
	 * Cut short at every length: more, then malformed at the end, once
	 * the 3 bytes that say TLS are in; before, not TLS; nothing at
	 * all, proto none.
	 */
	bad = 0;
	for (len = 0; len < h.b.b_len; len++) {
		s = feed(&st, TLSHELLO_CLIENT, (uint8_t *)h.b.b_data, len, 0,
		    NULL, &before);
		if (before != TLSHELLO_MORE || st.th_ja4[0] != '\0' ||
		    st.th_msg.b_data != NULL)
			bad++;
		else if (len >= 3 ? s != TLSHELLO_MALFORMED ||
		    !st.th_truncated || st.th_proto != TLSHELLO_PROTO_TLS :
		    s != TLSHELLO_NOTTLS || st.th_proto != (len == 0 ?
		    TLSHELLO_PROTO_NONE : TLSHELLO_PROTO_UNKNOWN))
			bad++;
	}
	ok(bad == 0, "truncated at each of %zu lengths: more, then "
	    "malformed (cut short), no JA4, no buffer kept; under 3 bytes: "
	    "not TLS; nothing at all: proto none", h.b.b_len);
	buf_free(&h.b);

	/*
	 * 16 KiB: a hello body of exactly TLSHELLO_MAX_BYTES is read, one
	 * byte more is too big (said as soon as its header is read).  A
	 * record holds 2^14 bytes, so it takes two.
	 */
	hb_client_hello(&h, 0x001d, 32, 0);
	body = h.b.b_len - 9;
	buf_free(&h.b);
	pad = TLSHELLO_MAX_BYTES - body - 4;
	buf_init(&rec, 0);
	for (d = 0; d <= 1; d++) {
		hb_client_hello(&h, 0x001d, 32, pad + (size_t)d);
		/* the message, out of its oversized record, in records of 2^14 */
		buf_init(&msg, 0);
		(void)buf_add(&msg, h.b.b_data + 5, h.b.b_len - 5);
		recs = resplit((uint8_t *)msg.b_data, msg.b_len, 16384, &rec);
		s = feed(&st, TLSHELLO_CLIENT, (uint8_t *)rec.b_data, rec.b_len,
		    -1, NULL, &before);
		if (d == 0)
			ok(before == TLSHELLO_DONE && st.th_hello_bytes ==
			    4 + TLSHELLO_MAX_BYTES && recs == 2,
			    "a hello of 16384 bytes (and its header) in %zu "
			    "records: done (%s)", recs,
			    tlshello_status_name(before));
		else
			ok(before == TLSHELLO_TOOBIG && st.th_msg.b_data == NULL,
			    "a hello of 16385 bytes: too big, no buffer kept (%s)",
			    tlshello_status_name(before));
		s = feed(&st, TLSHELLO_CLIENT, (uint8_t *)rec.b_data, 9, 0,
		    NULL, &before);
		if (d == 1)
			ok(before == TLSHELLO_TOOBIG, "too big as soon as the "
			    "handshake header is read");
		buf_free(&msg);
		buf_free(&h.b);
	}

	/* 64 records are read, 65 are too many */
	hb_client_hello(&h, 0x001d, 32, 0);
	buf_init(&msg, 0);
	(void)buf_add(&msg, h.b.b_data + 5, h.b.b_len - 5);
	for (len = 1; len < msg.b_len; len++)
		if ((msg.b_len + len - 1) / len <= 64)
			break;
	recs = resplit((uint8_t *)msg.b_data, msg.b_len, len, &rec);
	(void)feed(&st, TLSHELLO_CLIENT, (uint8_t *)rec.b_data, rec.b_len, 1,
	    NULL, &before);
	ok(recs <= 64 && before == TLSHELLO_DONE && st.th_records == recs,
	    "%zu records of %zu bytes: done", recs, len);
	recs = resplit((uint8_t *)msg.b_data, msg.b_len, len - 1, &rec);
	(void)feed(&st, TLSHELLO_CLIENT, (uint8_t *)rec.b_data, rec.b_len, 1,
	    NULL, &before);
	ok(recs > 64 && before == TLSHELLO_TOOBIG && st.th_records == 65,
	    "%zu records of %zu bytes: too big at the 65th", recs, len - 1);

	/* the buffer: held while reading, freed by release, and when done */
	tlshello_init(&st, TLSHELLO_CLIENT);
	(void)tlshello_feed(&st, rec.b_data, 40);
	ok(st.th_status == TLSHELLO_MORE && st.th_msg.b_data != NULL,
	    "mid-hello: the buffer is held");
	tlshello_release(&st);
	tlshello_release(&st);
	ok(st.th_msg.b_data == NULL, "tlshello_release frees it (twice is fine)");
	tlshello_init(&st, TLSHELLO_CLIENT);
	s = tlshello_feed(&st, h.b.b_data, h.b.b_len);
	ok(s == TLSHELLO_DONE && st.th_msg.b_data == NULL &&
	    tlshello_feed(&st, "\x16\x03", 2) == TLSHELLO_DONE &&
	    tlshello_end(&st) == TLSHELLO_DONE,
	    "done: the buffer is freed; later bytes and the end change nothing");
	buf_free(&msg);
	buf_free(&rec);
	buf_free(&h.b);
}

/* ------------------------------------------------------------ not TLS */

static void
test_not_tls(void)
{
	static const struct {
		const char		*what;
		const char		*bytes;
		size_t			 len;
		enum tlshello_proto	 proto;
		enum tlshello_status	 status;
	} cases[] = {
		{ "an ssh client's banner", "SSH-2.0-OpenSSH_9.2p1 Debian\r\n",
		    30, TLSHELLO_PROTO_SSH, TLSHELLO_NOTTLS },
		{ "an smtp server's banner", "220 mx.example ESMTP Postfix\r\n",
		    30, TLSHELLO_PROTO_UNKNOWN, TLSHELLO_NOTTLS },
		{ "an smtp client's EHLO", "EHLO client.example\r\n",
		    21, TLSHELLO_PROTO_UNKNOWN, TLSHELLO_NOTTLS },
		{ "an HTTP request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		    27, TLSHELLO_PROTO_HTTP, TLSHELLO_NOTTLS },
		{ "a CONNECT inside the tunnel", "CONNECT a:443 HTTP/1.1\r\n",
		    24, TLSHELLO_PROTO_HTTP, TLSHELLO_NOTTLS },
		{ "the HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		    24, TLSHELLO_PROTO_HTTP, TLSHELLO_NOTTLS },
		{ "GETX (not a method)", "GETX / HTTP/1.1\r\n",
		    17, TLSHELLO_PROTO_UNKNOWN, TLSHELLO_NOTTLS },
		/* RFC 5246 E.2: length 0x2e with the high bit, msg_type 1, 3.1 */
		{ "an SSLv2-style ClientHello", "\x80\x2e\x01\x03\x01\x00\x15"
		    "\x00\x00\x00\x10", 11, TLSHELLO_PROTO_SSLV2, TLSHELLO_NOTTLS },
		{ "a high-bit byte that is not SSLv2", "\x80\x2e\x02\x03",
		    4, TLSHELLO_PROTO_UNKNOWN, TLSHELLO_NOTTLS },
		{ "application data first", "\x17\x03\x03\x00\x05hello",
		    10, TLSHELLO_PROTO_TLS, TLSHELLO_MALFORMED },
		{ "an alert first", "\x15\x03\x03\x00\x02\x02\x28",
		    7, TLSHELLO_PROTO_TLS, TLSHELLO_MALFORMED },
		{ "a handshake that is not a ClientHello",
		    "\x16\x03\x01\x00\x04\x02\x00\x00\x00", 9,
		    TLSHELLO_PROTO_TLS, TLSHELLO_MALFORMED },
		{ "an empty handshake record", "\x16\x03\x01\x00\x00\x01",
		    6, TLSHELLO_PROTO_TLS, TLSHELLO_MALFORMED },
		{ "a record over 2^14 bytes", "\x16\x03\x01\x40\x01\x01",
		    6, TLSHELLO_PROTO_TLS, TLSHELLO_MALFORMED },
		{ "record version 3.5", "\x16\x03\x05\x00\x10\x01",
		    6, TLSHELLO_PROTO_UNKNOWN, TLSHELLO_NOTTLS },
		{ "record version 2.0", "\x16\x02\x00\x00\x10\x01",
		    6, TLSHELLO_PROTO_UNKNOWN, TLSHELLO_NOTTLS },
		{ "a ClientHello of length 0", "\x16\x03\x01\x00\x04\x01\x00"
		    "\x00\x00", 9, TLSHELLO_PROTO_TLS, TLSHELLO_MALFORMED },
		{ "a NUL byte", "\x00", 1, TLSHELLO_PROTO_UNKNOWN,
		    TLSHELLO_NOTTLS },
		{ "one byte, then the end: \"G\"", "G", 1,
		    TLSHELLO_PROTO_UNKNOWN, TLSHELLO_NOTTLS },
		{ "one byte, then the end: 0x16", "\x16", 1,
		    TLSHELLO_PROTO_UNKNOWN, TLSHELLO_NOTTLS },
	};
	struct tlshello		 st;
	enum tlshello_status	 s1, s2;
	uint8_t			 junk[2048];
	size_t			 i, j, n;
	int			 bad;

	for (i = 0; i < nitems(cases); i++) {
		s1 = feed(&st, TLSHELLO_CLIENT, (const uint8_t *)cases[i].bytes,
		    cases[i].len, 0, NULL, NULL);
		s2 = feed(&st, TLSHELLO_CLIENT, (const uint8_t *)cases[i].bytes,
		    cases[i].len, 1, NULL, NULL);
		ok(s1 == cases[i].status && s2 == s1 &&
		    st.th_proto == cases[i].proto && st.th_msg.b_data == NULL,
		    "%s: %s, proto %s (whole and a byte at a time)",
		    cases[i].what, tlshello_status_name(s1),
		    tlshello_proto_name(st.th_proto));
	}
	tlshello_init(&st, TLSHELLO_CLIENT);
	ok(tlshello_feed(&st, "SSH", 3) == TLSHELLO_MORE &&
	    tlshello_feed(&st, "-", 1) == TLSHELLO_NOTTLS &&
	    st.th_proto == TLSHELLO_PROTO_SSH,
	    "SSH- is told apart on its 4th byte, not before");

	/* garbage: random bytes in random reads, whole and a byte at a time agree */
	bad = 0;
	for (i = 0; i < 3000; i++) {
		n = 1 + rnd() % sizeof(junk);
		for (j = 0; j < n; j++)
			junk[j] = (uint8_t)rnd();
		/* often, something that starts like a ClientHello */
		if (i % 2 == 0 && n > 6) {
			memcpy(junk, "\x16\x03\x01", 3);
			junk[5] = 1;
		}
		s1 = feed(&st, i % 3 ? TLSHELLO_CLIENT : TLSHELLO_SERVER, junk,
		    n, 0, NULL, NULL);
		s2 = feed(&st, i % 3 ? TLSHELLO_CLIENT : TLSHELLO_SERVER, junk,
		    n, -1, NULL, NULL);
		if (s1 != s2 || s1 == TLSHELLO_MORE || st.th_msg.b_data != NULL)
			bad++;
	}
	ok(bad == 0, "3000 random inputs: a final status, the same in "
	    "any reads, no buffer kept");
}

/* ------------------------------------------------------------ mutations */

/* Each vector with bytes changed: whole, a byte at a time and in random reads agree. */
static void
test_mutations(void)
{
	static const char	*names[] = {
		"foxio-chrome-grease.bin", "rfc8448-s3-fragmented.bin",
		"foxio-tls10-sni-only.bin", "live-curl-name.bin",
	};
	struct tlshello		 st;
	struct buf		 bin, m;
	enum tlshello_status	 s1, s2, s3;
	char			 ja4[TLSHELLO_JA4_LEN + 1];
	size_t			 i, j, k, runs = 0, done = 0;
	int			 bad = 0;

	buf_init(&m, 0);
	for (i = 0; i < nitems(names); i++) {
		if (read_fixture(names[i], &bin) == -1) {
			bad++;
			continue;
		}
		for (j = 0; j < 500; j++) {
			buf_reset(&m);
			(void)buf_add(&m, bin.b_data, bin.b_len);
			for (k = 0; k < 1 + j % 4; k++)
				m.b_data[rnd() % m.b_len] = (char)rnd();
			if (j % 7 == 0)
				buf_truncate(&m, rnd() % m.b_len);
			s1 = feed(&st, TLSHELLO_CLIENT, (uint8_t *)m.b_data,
			    m.b_len, 0, NULL, NULL);
			memcpy(ja4, st.th_ja4, sizeof(ja4));
			s2 = feed(&st, TLSHELLO_CLIENT, (uint8_t *)m.b_data,
			    m.b_len, 1, NULL, NULL);
			if (s1 != s2 || strcmp(ja4, st.th_ja4) != 0)
				bad++;
			s3 = feed(&st, TLSHELLO_CLIENT, (uint8_t *)m.b_data,
			    m.b_len, -1, NULL, NULL);
			if (s1 != s3 || strcmp(ja4, st.th_ja4) != 0)
				bad++;
			runs++;
			done += s1 == TLSHELLO_DONE;
		}
		buf_free(&bin);
	}
	buf_free(&m);
	ok(bad == 0, "%zu mutated vectors (%zu still done): the same status "
	    "and JA4 whole, a byte at a time and in random reads", runs, done);
}

/* ------------------------------------------------------------ ServerHello */

static void
test_server(void)
{
	/* TLS 1.2 (RFC 5246 7.4.1.3), no extensions, then Certificate */
	static const uint8_t	 sh12[] = {
		22, 3, 3, 0, 0x32,
		2, 0, 0, 0x26, 3, 3,
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
		17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
		0, 0xc0, 0x2f, 0,
		11, 0, 0, 4, 0, 0, 0, 0,	/* Certificate, in the same record */
	};
	/* a HelloRetryRequest (RFC 8446 4.1.4) asking for X25519MLKEM768 */
	static const uint8_t	 hrr[] = {
		22, 3, 3, 0, 0x38,
		2, 0, 0, 0x34, 3, 3,
		0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11,
		0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
		0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e,
		0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
		0, 0x13, 0x02, 0,
		0, 0x0c,
		0, 0x2b, 0, 2, 3, 4,
		0, 0x33, 0, 2, 0x11, 0xec,
	};
	struct tlshello		 st;
	struct buf		 bin;
	enum tlshello_status	 s, before;
	size_t			 k;
	int			 bad = 0;

	if (ok(read_fixture("rfc8448-s3-serverhello.bin", &bin) == 0,
	    "server: read rfc8448-s3-serverhello.bin")) {
		s = feed(&st, TLSHELLO_SERVER, (uint8_t *)bin.b_data, bin.b_len,
		    0, NULL, &before);
		ok(before == TLSHELLO_DONE && st.th_version == 0x0304 &&
		    st.th_legacy_version == 0x0303 && st.th_cipher == 0x1301 &&
		    st.th_group == 0x001d && !st.th_hrr && !st.th_pq,
		    "server: RFC 8448's ServerHello: TLS 1.3 (0x%04x), cipher "
		    "0x%04x, x25519, not HRR", st.th_version, st.th_cipher);
		for (k = 1; k <= bin.b_len; k++) {
			s = feed(&st, TLSHELLO_SERVER, (uint8_t *)bin.b_data,
			    bin.b_len, (int)k, NULL, &before);
			if (before != TLSHELLO_DONE || st.th_cipher != 0x1301)
				bad++;
		}
		ok(bad == 0, "server: the same in reads of 1..%zu bytes",
		    bin.b_len);
		s = feed(&st, TLSHELLO_CLIENT, (uint8_t *)bin.b_data, bin.b_len,
		    0, NULL, NULL);
		ok(s == TLSHELLO_MALFORMED, "a ServerHello read as a client's "
		    "hello: malformed");
		buf_free(&bin);
	}
	(void)feed(&st, TLSHELLO_SERVER, sh12, sizeof(sh12), 1, NULL, &before);
	ok(before == TLSHELLO_DONE && st.th_version == 0x0303 &&
	    st.th_cipher == 0xc02f && !st.th_hrr,
	    "server: TLS 1.2 without extensions, Certificate in the same "
	    "record: 0x0303, 0xc02f, done at the record's end");
	(void)feed(&st, TLSHELLO_SERVER, sh12, sizeof(sh12) - 1, 0, NULL,
	    &before);
	ok(before == TLSHELLO_MORE, "server: done only when that record is whole");
	(void)feed(&st, TLSHELLO_SERVER, hrr, sizeof(hrr), 0, NULL, &before);
	ok(before == TLSHELLO_DONE && st.th_hrr && st.th_version == 0x0304 &&
	    st.th_cipher == 0x1302 && st.th_group == 0x11ec && st.th_pq,
	    "server: a HelloRetryRequest: hrr, 0x0304, 0x1302, asks for "
	    "X25519MLKEM768");
	s = feed(&st, TLSHELLO_SERVER, (const uint8_t *)"SSH-2.0-x\r\n", 11,
	    0, NULL, NULL);
	ok(s == TLSHELLO_NOTTLS && st.th_proto == TLSHELLO_PROTO_SSH,
	    "server: an ssh server's banner: not TLS, ssh");
	s = feed(&st, TLSHELLO_SERVER, (const uint8_t *)"HTTP/1.1 400 Bad\r\n",
	    18, 0, NULL, NULL);
	ok(s == TLSHELLO_NOTTLS && st.th_proto == TLSHELLO_PROTO_HTTP,
	    "server: an HTTP status line: not TLS, http");
}

int
main(void)
{
	test_vectors();
	test_built();
	test_not_tls();
	test_mutations();
	test_server();
	return done_testing();
}
