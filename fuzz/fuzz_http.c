/* fuzz_http.c: libFuzzer harness for the request head parser: CONNECT and absolute-form requests to forward */
/* fuzz-sources: connectd/http.c connectd/httpmsg.c */
/* fuzz-libs: libcrypto */
/* fuzz-options: -max_len=20000 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "connectd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const int http_statuses[] = {
	400, 403, 405, 408, 431, 500, 501, 502, 503, 504, 505
};

static int
fuzz_inside(const char *buf, size_t len, const char *p, size_t n)
{
	return p >= buf && p <= buf + len && n <= (size_t)(buf + len - p);
}

static int
fuzz_parse_st(struct http_head *st, const char *data, size_t len, size_t max,
    struct http_request *req)
{
	enum http_parse	 rv;
	char		*buf;

	/* an exact-size copy, so that ASan sees any read past len */
	if ((buf = malloc(len ? len : 1)) == NULL)
		abort();
	memcpy(buf, data, len);
	rv = http_parse_request(st, buf, len, max, req);

	switch (rv) {
	case HTTP_PARSE_DONE:
		assert(req->hr_status == 0 && req->hr_error == NULL);
		assert(req->hr_head_len > 0 && req->hr_head_len <= len &&
		    req->hr_head_len <= max);
		assert(buf[req->hr_head_len - 1] == '\n');
		assert(memchr(buf, '\0', req->hr_head_len) == NULL);
		if (req->hr_forward) {
			/* absolute-form, http only (RFC 9112 3.2.2) */
			assert(!(req->hr_method_len == 7 &&
			    memcmp(req->hr_method, "CONNECT", 7) == 0));
			assert(req->hr_target_len >= 8 &&
			    strncasecmp(req->hr_target, "http://", 7) == 0);
			assert(req->hr_path != NULL && fuzz_inside(buf,
			    req->hr_head_len, req->hr_path,
			    req->hr_path_len));
			assert(memchr(req->hr_path, '#',
			    req->hr_path_len) == NULL);
			/* a length read one way only (RFC 9112 6.3) */
			assert(!(req->hr_chunked && req->hr_clen != -1));
			assert(req->hr_clen >= -1);
		} else {
			assert(req->hr_method_len == 7 &&
			    memcmp(req->hr_method, "CONNECT", 7) == 0);
			assert(req->hr_path == NULL);
		}
		assert(req->hr_version == 10 || req->hr_version == 11);
		assert(req->hr_target != NULL && fuzz_inside(buf,
		    req->hr_head_len, req->hr_target, req->hr_target_len));
		assert(memchr(req->hr_target, '@', req->hr_target_len) == NULL);
		assert(req->hr_host != NULL && fuzz_inside(buf,
		    req->hr_head_len, req->hr_host, req->hr_host_len));
		assert(req->hr_host_len >= 1 &&
		    req->hr_host_len <= HOST_NAME_MAX_LEN);
		assert(req->hr_port >= 1);
		if (req->hr_user_agent != NULL) {
			assert(fuzz_inside(buf, req->hr_head_len,
			    req->hr_user_agent, req->hr_user_agent_len));
			assert(req->hr_user_agent_len <= USER_AGENT_MAX_LEN);
		}
		if (req->hr_proxy_auth != NULL) {
			char	 cred[HTTP_CRED_MAX];

			assert(fuzz_inside(buf, req->hr_head_len,
			    req->hr_proxy_auth, req->hr_proxy_auth_len));
			/* "user:pass", NUL-terminated and bounded, or none */
			if (http_basic_decode(req->hr_proxy_auth,
			    req->hr_proxy_auth_len, cred, sizeof(cred)) >= 0)
				assert(strlen(cred) < sizeof(cred) &&
				    strchr(cred, ':') != NULL);
		}
		break;
	case HTTP_PARSE_ERROR:
		assert(req->hr_status == 400 || req->hr_status == 405 ||
		    req->hr_status == 431 || req->hr_status == 501 ||
		    req->hr_status == 505);
		assert(req->hr_error != NULL && req->hr_error[0] != '\0');
		assert(req->hr_head_len == 0);
		if (req->hr_status == 405)
			assert(req->hr_method != NULL);
		break;
	case HTTP_PARSE_INCOMPLETE:
		assert(len < max);
		assert(req->hr_status == 0 && req->hr_error == NULL);
		break;
	default:
		abort();
	}
	/* on every outcome, whatever was set points into buf */
	if (req->hr_method != NULL)
		assert(fuzz_inside(buf, len, req->hr_method,
		    req->hr_method_len));
	if (req->hr_target != NULL)
		assert(fuzz_inside(buf, len, req->hr_target,
		    req->hr_target_len));
	if (req->hr_host != NULL)
		assert(fuzz_inside(buf, len, req->hr_host, req->hr_host_len));
	if (req->hr_user_agent != NULL)
		assert(fuzz_inside(buf, len, req->hr_user_agent,
		    req->hr_user_agent_len));
	if (req->hr_proxy_auth != NULL)
		assert(fuzz_inside(buf, len, req->hr_proxy_auth,
		    req->hr_proxy_auth_len));

	/* make pointers comparable across calls: offsets into data */
#define REBASE(f)	do { if (req->f != NULL) \
	req->f = data + (req->f - buf); } while (0)
	REBASE(hr_method);
	REBASE(hr_target);
	REBASE(hr_host);
	REBASE(hr_user_agent);
	REBASE(hr_proxy_auth);
	REBASE(hr_path);
#undef REBASE
	free(buf);
	return rv;
}

static int
fuzz_parse(const char *data, size_t len, size_t max, struct http_request *req)
{
	struct http_head	 st;

	memset(&st, 0, sizeof(st));
	return fuzz_parse_st(&st, data, len, max, req);
}

/*
 * A head that arrives in pieces decides as the whole does, whatever the
 * cuts: the parser goes on from where it stopped, in a buffer that has
 * moved (each call parses a new copy).
 */
static void
fuzz_pieces(const char *data, size_t len, size_t max, const size_t *cuts,
    size_t ncuts)
{
	struct http_head	 st;
	struct http_request	 a, b;
	size_t			 i;
	int			 ra = HTTP_PARSE_INCOMPLETE, rb;

	memset(&st, 0, sizeof(st));
	for (i = 0; i < ncuts && ra == HTTP_PARSE_INCOMPLETE; i++)
		if (cuts[i] < len)
			ra = fuzz_parse_st(&st, data, cuts[i], max, &a);
	if (ra == HTTP_PARSE_INCOMPLETE)
		ra = fuzz_parse_st(&st, data, len, max, &a);
	rb = fuzz_parse(data, len, max, &b);
	if (ra != HTTP_PARSE_ERROR || rb != HTTP_PARSE_ERROR)
		assert(ra == rb);
	if (ra != rb)
		return;		/* both errors: a piece may find one sooner */
	assert(a.hr_status == b.hr_status);
	if (ra == HTTP_PARSE_DONE)
		assert(memcmp(&a, &b, sizeof(a)) == 0);
}

/*
 * What a prefix decides, the whole input decides the same way: an error
 * found early, or a head that is already complete, does not change when
 * more bytes arrive.
 */
static void
fuzz_prefix(const char *data, size_t len, size_t max, size_t cut)
{
	struct http_request	 a, b;
	int			 ra, rb;

	ra = fuzz_parse(data, cut, max, &a);
	rb = fuzz_parse(data, len, max, &b);
	if (ra == HTTP_PARSE_INCOMPLETE)
		return;
	assert(ra == rb);
	assert(a.hr_status == b.hr_status);
	assert(strcmp(a.hr_error ? a.hr_error : "",
	    b.hr_error ? b.hr_error : "") == 0);
	if (ra == HTTP_PARSE_DONE)
		assert(memcmp(&a, &b, sizeof(a)) == 0);
}

static void
fuzz_replies(size_t small)
{
	char		 buf[512], *body;
	const char	*text;
	size_t		 i, clen;
	int		 n;

	for (i = 0; i < sizeof(http_statuses) / sizeof(http_statuses[0]); i++) {
		text = http_status_text(http_statuses[i]);
		assert(text != NULL);
		n = http_reply_error(http_statuses[i], buf, sizeof(buf));
		assert(n > 0 && (size_t)n < sizeof(buf));
		assert((size_t)n == strlen(buf));
		assert(strncmp(buf, "HTTP/1.1 ", 9) == 0);
		assert(atoi(buf + 9) == http_statuses[i]);
		assert(strstr(buf, "\r\nConnection: close\r\n") != NULL);
		assert((body = strstr(buf, "\r\n\r\n")) != NULL);
		body += 4;
		assert(sscanf(strstr(buf, "Content-Length: "),
		    "Content-Length: %zu", &clen) == 1);
		assert(clen == strlen(body));
		assert(strncmp(body, text, strlen(text)) == 0);
		/* a short buffer fails cleanly, never a partial reply */
		n = http_reply_error(http_statuses[i], buf, small);
		assert(n == -1 || (size_t)n < small);
	}
	assert(http_reply_error(200, buf, sizeof(buf)) == -1);
	assert(http_reply_error(-1, buf, sizeof(buf)) == -1);
	assert(http_reply_error(599, buf, sizeof(buf)) == -1);
	assert(http_status_text(599) == NULL);
	assert(strcmp(http_status_text(200), "Connection established") == 0);
}

/*
 * Any bytes as a target: the logged copy fits, stops at its first "?",
 * and its userinfo part (before the authority's last '@') is "***".
 */
static void
fuzz_redact(const char *t, size_t len, size_t outlen)
{
	char		*out;
	const char	*q, *at, *end;
	size_t		 n, a = 0;

	if ((out = malloc(outlen)) == NULL)
		abort();
	n = http_target_redact(t, len, out, outlen);
	assert(n < outlen && out[n] == '\0' && n <= len + 3);
	if ((q = memchr(out, '?', n)) != NULL)
		assert(q == out + n - 1);
	if (n >= 3 && (q = strstr(out, "://")) != NULL &&
	    strncmp(t, out, (size_t)(q - out)) == 0 &&
	    memchr(out, '/', (size_t)(q - out)) == NULL &&
	    memchr(out, '?', (size_t)(q - out)) == NULL &&
	    memchr(out, '@', (size_t)(q - out)) == NULL &&
	    memchr(out, '#', (size_t)(q - out)) == NULL)
		a = (size_t)(q - out) + 3;
	/* the authority: up to "/" (absolute-form), "?" or "#" */
	for (end = out + a; end < out + n && *end != '?' && *end != '#' &&
	    (a == 0 || *end != '/'); end++)
		;
	if ((at = memchr(out + a, '@', (size_t)(end - (out + a)))) != NULL) {
		assert(at >= out + a + 3 && memcmp(at - 3, "***", 3) == 0);
		assert(at - 3 == out + a || a == 0);
		assert(memchr(at + 1, '@', (size_t)(end - at - 1)) == NULL);
	}
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request	 req;
	const char		*p = (const char *)data;
	size_t			 cut, cuts[64], i;

	fuzz_parse(p, size, REQUEST_HEADER_MAX, &req);
	fuzz_parse(p, size, 64, &req);

	cut = size > 0 ? data[0] % (size + 1) : 0;
	fuzz_prefix(p, size, REQUEST_HEADER_MAX, cut);
	fuzz_prefix(p, size, REQUEST_HEADER_MAX, size / 2);
	fuzz_prefix(p, size, 64, cut);
	/* in order: a later call's buffer holds the earlier one's and more */
	cuts[0] = size / 3;
	cuts[1] = size / 2;
	cuts[2] = size - size / 4;
	cuts[3] = cut > cuts[2] ? cut : cuts[2];
	fuzz_pieces(p, size, REQUEST_HEADER_MAX, cuts, 4);
	for (i = 0; i < size && i < 64; i++)
		cuts[i] = i;
	fuzz_pieces(p, size, 64, cuts, i);

	fuzz_replies(size % 256);
	fuzz_redact(p, size, size + 4);
	fuzz_redact(p, size, 1 + size % 32);
	return 0;
}
