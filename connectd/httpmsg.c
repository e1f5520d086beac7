/* httpmsg.c: HTTP/1.x message framing for forwarding: response heads, Content-Length, chunked, until-close */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "connectd.h"

/*
 * Pure functions over bytes, fuzzed (fuzz/fuzz_httpmsg.c).  The response
 * head is taken whole once its empty line has arrived; a body is framed
 * as its bytes pass, without holding them (RFC 9112 6 and 7).
 */

#define HTTPMSG_CHUNK_EXT_MAX	4096	/* bytes of one chunk's extensions */
#define HTTPMSG_TRAILER_MAX	(64 * 1024)

/*
 * Where the head at the start of buf[0..len) ends: the offset after its
 * empty line, or 0 if it has not arrived.  *scan keeps how far the search
 * went (0 on the first call), so that each call costs what arrived.
 */
size_t
httpmsg_head_end(const char *buf, size_t len, size_t *scan)
{
	const char	*lf;
	size_t		 i = *scan;

	while (i < len && (lf = memchr(buf + i, '\n', len - i)) != NULL) {
		i = (size_t)(lf - buf) + 1;
		/* LF LF, or LF CR LF: the empty line */
		if (i >= 2 && buf[i - 2] == '\n')
			return i;
		if (i >= 3 && buf[i - 2] == '\r' && buf[i - 3] == '\n')
			return i;
	}
	/* go back far enough to see an empty line that straddles reads */
	*scan = len > 2 ? len - 2 : 0;
	return 0;
}

static int
httpmsg_fail(struct http_response *rs, const char *why)
{
	rs->rs_error = why;
	return -1;
}

/*
 * The value of the field line p[0..n), without OWS, in *v and *vl.
 * Returns the length of its name: 0 if it has no colon.
 */
size_t
httpmsg_field(const char *p, size_t n, const char **v, size_t *vl)
{
	const char	*colon;
	size_t		 name, e;

	if ((colon = memchr(p, ':', n)) == NULL)
		return 0;
	name = (size_t)(colon - p);
	for (*v = colon + 1; *v < p + n && (**v == ' ' || **v == '\t'); (*v)++)
		;
	for (e = (size_t)(p + n - *v); e > 0 && ((*v)[e - 1] == ' ' ||
	    (*v)[e - 1] == '\t'); e--)
		;
	*vl = e;
	return name;
}

/* Does the comma-separated list v[0..n) hold tok (any case)? */
int
httpmsg_list_has(const char *v, size_t n, const char *tok)
{
	size_t	 i = 0, s, e, tl = strlen(tok);

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		for (s = i; i < n && v[i] != ','; i++)
			;
		for (e = i; e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'); e--)
			;
		if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
			return 1;
	}
	return 0;
}

/*
 * A Content-Length value v[0..n) without OWS (RFC 9110 8.6): 1*DIGIT, at
 * most 18 of them so that it fits.  Returns it, or -1 if it is not one;
 * a list ("1, 1") is refused, as a smuggler's tool.
 */
int64_t
httpmsg_content_length(const char *v, size_t n)
{
	int64_t	 len = 0;
	size_t	 i;

	if (n == 0 || n > 18)
		return -1;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		len = len * 10 + (v[i] - '0');
	}
	return len;
}

/*
 * Is chunked the last coding of the Transfer-Encoding value v[0..n)
 * (RFC 9112 6.1)?  Only then is the body's end known from the codings.
 */
int
httpmsg_chunked_last(const char *v, size_t n)
{
	return n >= 7 && strncasecmp(v + n - 7, "chunked", 7) == 0 &&
	    (n == 7 || v[n - 8] == ',' || v[n - 8] == ' ' || v[n - 8] == '\t');
}

/*
 * The response head buf[0..len) (its empty line included, as
 * httpmsg_head_end() found it) to a request of method head (1: HEAD).
 * Fills rs, pointers into buf, and returns 0; -1 with rs_error if the
 * head is not one a proxy may pass on.
 */
int
httpmsg_response(const char *buf, size_t len, int head,
    struct http_response *rs)
{
	const char	*p = buf, *end = buf + len, *lf, *v;
	size_t		 n, name, vl, i;
	int64_t		 clen = -1, cl;
	int		 te = 0;

	memset(rs, 0, sizeof(*rs));
	rs->rs_clen = -1;
	/* "HTTP/1.x SP 3DIGIT SP reason" (the reason may be empty) */
	if ((lf = memchr(p, '\n', len)) == NULL)
		return httpmsg_fail(rs, "no status line");
	n = (size_t)(lf - p);
	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 ||
	    (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
	    p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
	    p[11] < '0' || p[11] > '9' || (n > 12 && p[12] != ' '))
		return httpmsg_fail(rs, "bad status line");
	for (i = 12; i < n; i++)
		if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
			return httpmsg_fail(rs, "bad status line");
	rs->rs_version = p[7] == '1' ? 11 : 10;
	rs->rs_status = (p[9] - '0') * 100 + (p[10] - '0') * 10 +
	    (p[11] - '0');
	rs->rs_close = rs->rs_version == 10;
	rs->rs_line_len = n;

	for (p = lf + 1; p < end; p = lf + 1) {
		lf = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)(lf - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n == 0)
			break;
		if (p[0] == ' ' || p[0] == '\t')
			return httpmsg_fail(rs, "obs-fold");
		if (++rs->rs_nfields > HTTP_HEADERS_MAX)
			return httpmsg_fail(rs, "too many header fields");
		for (i = 0; i < n; i++)
			if (p[i] == '\0' || p[i] == '\r' ||
			    ((unsigned char)p[i] < 0x20 && p[i] != '\t'))
				return httpmsg_fail(rs, "bad header field");
		if ((name = httpmsg_field(p, n, &v, &vl)) == 0)
			return httpmsg_fail(rs, "bad header field");
		for (i = 0; i < name; i++)
			if (p[i] == ' ' || p[i] == '\t')
				return httpmsg_fail(rs, "bad header field");
#define NAME(s)	(name == sizeof(s) - 1 && strncasecmp(p, s, name) == 0)
		if (NAME("Content-Length")) {
			if ((cl = httpmsg_content_length(v, vl)) == -1)
				return httpmsg_fail(rs, "bad Content-Length");
			if (clen != -1 && clen != cl)
				return httpmsg_fail(rs, "several "
				    "Content-Length values");
			clen = cl;
		} else if (NAME("Transfer-Encoding")) {
			/* the last coding decides: chunked, or until close */
			te = 1;
			rs->rs_chunked = httpmsg_chunked_last(v, vl);
		} else if (NAME("Connection")) {
			if (httpmsg_list_has(v, vl, "close"))
				rs->rs_close = 1;
			else if (httpmsg_list_has(v, vl, "keep-alive"))
				rs->rs_close = 0;
		} else if (NAME("Content-Type") && rs->rs_type == NULL) {
			rs->rs_type = v;
			rs->rs_type_len = vl;
		}
#undef NAME
	}
	rs->rs_head_len = len;

	/* RFC 9112 6.3: how long the body is */
	if (head || rs->rs_status < 200 || rs->rs_status == 204 ||
	    rs->rs_status == 304)
		rs->rs_body = HTTP_BODY_NONE;
	else if (te) {
		/* a length beside a coding is not to be trusted: close after */
		rs->rs_body = rs->rs_chunked ? HTTP_BODY_CHUNKED :
		    HTTP_BODY_CLOSE;
		if (clen != -1 || !rs->rs_chunked)
			rs->rs_close = 1;
	} else if (clen != -1) {
		rs->rs_body = HTTP_BODY_LENGTH;
		rs->rs_clen = clen;
	} else {
		rs->rs_body = HTTP_BODY_CLOSE;
		rs->rs_close = 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- bodies */

void
httpmsg_body_init(struct http_body *b, enum http_body_kind kind,
    int64_t length)
{
	memset(b, 0, sizeof(*b));
	b->hb_kind = kind;
	b->hb_left = kind == HTTP_BODY_LENGTH ? (uint64_t)length : 0;
	b->hb_done = kind == HTTP_BODY_NONE ||
	    (kind == HTTP_BODY_LENGTH && length == 0);
}

/*
 * The chunked coding (RFC 9112 7.1), a byte at a time where it has to
 * be, a run at a time through chunk data.  Every byte is passed on as
 * it is; only the framing is checked.
 */
static ssize_t
httpmsg_chunked(struct http_body *b, const char *p, size_t n)
{
	size_t	 i = 0, run;
	int	 d;

	while (i < n && !b->hb_done) {
		switch (b->hb_state) {
		case HB_SIZE:
			if ((d = hexval((unsigned char)p[i])) >= 0) {
				if (b->hb_digits++ >= 15)
					return -1;	/* 2^60 and more */
				b->hb_left = b->hb_left * 16 + (uint64_t)d;
			} else if (b->hb_digits == 0)
				return -1;
			else if (p[i] == ';' || p[i] == ' ' || p[i] == '\t')
				b->hb_state = HB_EXT;
			else if (p[i] == '\r')
				b->hb_state = HB_SIZE_LF;
			else if (p[i] == '\n')
				goto size_done;
			else
				return -1;
			i++;
			break;
		case HB_EXT:
			if (p[i] == '\n')
				goto size_done;
			if (p[i] == '\r')
				b->hb_state = HB_SIZE_LF;
			else if (((unsigned char)p[i] < 0x20 && p[i] != '\t') ||
			    p[i] == 0x7f || ++b->hb_count > HTTPMSG_CHUNK_EXT_MAX)
				return -1;
			i++;
			break;
		case HB_SIZE_LF:
			if (p[i] != '\n')
				return -1;
 size_done:
			i++;
			b->hb_count = 0;
			b->hb_digits = 0;
			b->hb_state = b->hb_left == 0 ? HB_TRAILER : HB_DATA;
			break;
		case HB_DATA:
			run = n - i < b->hb_left ? n - i : (size_t)b->hb_left;
			if (b->hb_decode) {
				/* one run of data at a time, for the caller */
				b->hb_data = i;
				b->hb_data_len = run;
			}
			i += run;
			b->hb_left -= run;
			if (b->hb_left == 0)
				b->hb_state = HB_DATA_CR;
			if (b->hb_decode)
				return (ssize_t)i;
			break;
		case HB_DATA_CR:
			if (p[i] == '\r') {
				b->hb_state = HB_DATA_LF;
				i++;
				break;
			}
			/* a bare LF is taken, as for lines */
			/* FALLTHROUGH */
		case HB_DATA_LF:
			if (p[i++] != '\n')
				return -1;
			b->hb_state = HB_SIZE;
			break;
		case HB_TRAILER:
			/* field lines until an empty one */
			if (++b->hb_count > HTTPMSG_TRAILER_MAX || p[i] == '\0')
				return -1;
			if (p[i] == '\n') {
				if (b->hb_line == 0)
					b->hb_done = 1;
				b->hb_line = 0;
			} else if (p[i] != '\r')
				b->hb_line++;
			i++;
			break;
		}
	}
	return (ssize_t)i;
}

/*
 * Bytes p[0..n) arrive for the body b is framing.  Returns how many of
 * them belong to it (what is left is the next message's), or -1 if the
 * framing is broken.  hb_done is set once the body is complete.  With
 * hb_decode set on a chunked body, a call stops after each run of chunk
 * data and says where it was: p[hb_data..hb_data + hb_data_len).
 */
ssize_t
httpmsg_body(struct http_body *b, const char *p, size_t n)
{
	ssize_t	 r;
	size_t	 take;

	b->hb_data = 0;
	b->hb_data_len = 0;
	if (b->hb_done)
		return 0;
	switch (b->hb_kind) {
	case HTTP_BODY_NONE:
		return 0;
	case HTTP_BODY_LENGTH:
		take = n < b->hb_left ? n : (size_t)b->hb_left;
		b->hb_left -= take;
		b->hb_done = b->hb_left == 0;
		break;
	case HTTP_BODY_CHUNKED:
		if ((r = httpmsg_chunked(b, p, n)) > 0 && !b->hb_decode) {
			/* passed on as it is: framing and data alike */
			b->hb_data = 0;
			b->hb_data_len = (size_t)r;
		}
		return r;
	case HTTP_BODY_CLOSE:
	default:
		take = n;	/* until the server closes: all of it */
		break;
	}
	b->hb_data = 0;
	b->hb_data_len = take;
	return (ssize_t)take;
}
