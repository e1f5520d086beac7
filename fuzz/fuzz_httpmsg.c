/* fuzz_httpmsg.c: libFuzzer harness for the response head and body framing parsers (forwarding) */
/* fuzz-sources: connectd/httpmsg.c */
/* fuzz-options: -max_len=20000 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "connectd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/*
 * The input: one control byte, then what a server sends, a response head
 * and what follows it.  The control byte says whether the request was a
 * HEAD and where the bytes are cut into reads.
 */

static int
fuzz_inside(const char *buf, size_t len, const char *p, size_t n)
{
	return p >= buf && p <= buf + len && n <= (size_t)(buf + len - p);
}

/* Where the head ends, found in reads of step bytes (0: all at once). */
static size_t
fuzz_head_end(const char *p, size_t n, size_t step)
{
	size_t	 scan = 0, have, end;

	if (step == 0)
		return httpmsg_head_end(p, n, &scan);
	for (have = 0; have < n; ) {
		have = n - have < step ? n : have + step;
		if ((end = httpmsg_head_end(p, have, &scan)) != 0)
			return end;
		assert(scan <= have);
	}
	return 0;
}

struct framed {
	ssize_t	 taken;		/* bytes of the body, or -1: broken */
	int	 done;
	uint64_t data;		/* bytes of chunk data (when decoding) */
	uint32_t sum;		/* a checksum of them */
};

/*
 * Frame p[0..n) as a body of kind/length, the bytes arriving in reads of
 * step bytes (0: all at once); decode asks for the chunk data runs.
 */
static void
fuzz_frame(enum http_body_kind kind, int64_t length, int decode,
    const char *p, size_t n, size_t step, struct framed *f)
{
	struct http_body b;
	size_t		 off = 0, end, i;
	ssize_t		 r;

	memset(f, 0, sizeof(*f));
	httpmsg_body_init(&b, kind, length);
	b.hb_decode = decode;
	while (off < n && !b.hb_done) {
		end = step == 0 || n - off < step ? n : off + step;
		r = httpmsg_body(&b, p + off, end - off);
		if (r < 0) {
			f->taken = -1;
			return;
		}
		assert((size_t)r <= end - off);
		assert(b.hb_data + b.hb_data_len <= (size_t)r);
		if (kind != HTTP_BODY_CHUNKED || !decode)
			/* passed on whole: what is taken is what goes */
			assert(b.hb_data == 0 && b.hb_data_len == (size_t)r);
		for (i = 0; i < b.hb_data_len; i++)
			f->sum = f->sum * 31 + (unsigned char)p[off +
			    b.hb_data + i];
		f->data += b.hb_data_len;
		if (r == 0) {
			/* nothing more is taken only once it is complete */
			assert(b.hb_done || kind == HTTP_BODY_NONE);
			break;
		}
		off += (size_t)r;
	}
	f->taken = (ssize_t)off;
	f->done = b.hb_done;
	/* a body that is done takes nothing more */
	if (b.hb_done && n > 0)
		assert(httpmsg_body(&b, p, n) == 0 && b.hb_data_len == 0);
}

static void
fuzz_response(const char *buf, size_t len, int head, size_t step)
{
	struct http_response	 rs;
	struct framed		 whole, pieces, dec, dec_pieces;
	size_t			 end;

	end = fuzz_head_end(buf, len, 0);
	/* found in pieces or at once, the same end */
	assert(fuzz_head_end(buf, len, step) == end);
	assert(fuzz_head_end(buf, len, 1) == end);
	if (end == 0)
		return;
	assert(end <= len && buf[end - 1] == '\n');

	if (httpmsg_response(buf, end, head, &rs) != 0) {
		assert(rs.rs_error != NULL && rs.rs_error[0] != '\0');
		return;
	}
	assert(rs.rs_error == NULL);
	assert(rs.rs_version == 10 || rs.rs_version == 11);
	assert(rs.rs_status >= 100 && rs.rs_status <= 599);
	assert(rs.rs_head_len == end);
	assert(rs.rs_line_len >= 12 && rs.rs_line_len < end);
	assert(memcmp(buf, "HTTP/1.", 7) == 0);
	assert(rs.rs_nfields <= HTTP_HEADERS_MAX);
	if (rs.rs_type != NULL)
		assert(fuzz_inside(buf, end, rs.rs_type, rs.rs_type_len));
	/* RFC 9112 6.3: the framing the head chose */
	if (head || rs.rs_status < 200 || rs.rs_status == 204 ||
	    rs.rs_status == 304)
		assert(rs.rs_body == HTTP_BODY_NONE);
	if (rs.rs_body == HTTP_BODY_LENGTH)
		assert(rs.rs_clen >= 0);
	else
		assert(rs.rs_clen == -1);
	if (rs.rs_body == HTTP_BODY_CLOSE)
		assert(rs.rs_close);
	if (rs.rs_body == HTTP_BODY_CHUNKED)
		assert(rs.rs_chunked);

	/* the body, framed whole and in pieces, raw and decoded, agrees */
	fuzz_frame(rs.rs_body, rs.rs_clen, 0, buf + end, len - end, 0, &whole);
	fuzz_frame(rs.rs_body, rs.rs_clen, 0, buf + end, len - end, step,
	    &pieces);
	fuzz_frame(rs.rs_body, rs.rs_clen, 1, buf + end, len - end, 0, &dec);
	fuzz_frame(rs.rs_body, rs.rs_clen, 1, buf + end, len - end, step,
	    &dec_pieces);
	assert(whole.taken == pieces.taken && whole.done == pieces.done);
	assert(whole.taken == dec.taken && whole.done == dec.done);
	assert(dec.taken == dec_pieces.taken && dec.done == dec_pieces.done);
	if (dec.taken >= 0) {
		assert(dec.data == dec_pieces.data && dec.sum == dec_pieces.sum);
		if (rs.rs_body == HTTP_BODY_CHUNKED)
			/* decoded: less than the coding (sizes, CRLFs) */
			assert(dec.data < (uint64_t)dec.taken || dec.taken == 0);
		else
			assert(dec.data == (uint64_t)dec.taken);
	}
	switch (rs.rs_body) {
	case HTTP_BODY_NONE:
		assert(whole.taken == 0 && whole.done);
		break;
	case HTTP_BODY_LENGTH:
		assert((uint64_t)whole.taken == ((uint64_t)rs.rs_clen <
		    len - end ? (uint64_t)rs.rs_clen : len - end));
		assert(whole.done == ((uint64_t)rs.rs_clen <= len - end));
		break;
	case HTTP_BODY_CLOSE:
		assert((size_t)whole.taken == len - end && !whole.done);
		break;
	case HTTP_BODY_CHUNKED:
		/* the last chunk ends in an empty line */
		if (whole.done)
			assert(whole.taken >= 3 &&
			    buf[end + (size_t)whole.taken - 1] == '\n');
		break;
	}
}

/* A chunked body made here is framed back to what went in. */
static void
fuzz_chunk_roundtrip(const char *p, size_t n, size_t step)
{
	char		*enc;
	size_t		 cap = n * 6 + 64, len = 0, i, c;	/* 1-byte chunks: 6 each */
	struct framed	 f;
	uint32_t	 sum = 0;
	int		 w;

	if ((enc = malloc(cap)) == NULL)
		abort();
	for (i = 0; i < n; i += c) {
		c = (size_t)((unsigned char)p[i] % 17) + 1;
		if (c > n - i)
			c = n - i;
		w = snprintf(enc + len, cap - len, "%zx\r\n", c);
		len += (size_t)w;
		memcpy(enc + len, p + i, c);
		len += c;
		memcpy(enc + len, "\r\n", 2);
		len += 2;
	}
	for (i = 0; i < n; i++)
		sum = sum * 31 + (unsigned char)p[i];
	memcpy(enc + len, "0\r\n\r\nNEXT", 9);
	len += 9;
	fuzz_frame(HTTP_BODY_CHUNKED, -1, 1, enc, len, step, &f);
	assert(f.taken == (ssize_t)(len - 4) && f.done);
	assert(f.data == n && f.sum == sum);
	fuzz_frame(HTTP_BODY_CHUNKED, -1, 0, enc, len, step, &f);
	assert(f.taken == (ssize_t)(len - 4) && f.done);
	free(enc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*buf;
	size_t	 len, step;
	int	 head;

	if (size < 1)
		return 0;
	head = data[0] & 1;
	step = (size_t)(data[0] >> 1) + 1;
	len = size - 1;
	/* an exact-size copy, so that ASan sees any read past len */
	if ((buf = malloc(len ? len : 1)) == NULL)
		abort();
	memcpy(buf, data + 1, len);
	fuzz_response(buf, len, head, step);
	fuzz_chunk_roundtrip(buf, len < 4096 ? len : 4096, step);
	free(buf);
	return 0;
}
