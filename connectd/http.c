/* http.c: CONNECT request head parser and canned error replies */
#include <arpa/inet.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "connectd.h"

/*
 * Choices, checked against Squid 5.7 on loopback where noted:
 *
 * - Lines end in CRLF or a bare LF (RFC 9112 2.2 allows it; Squid's
 *   default relaxed_header_parser accepts it too).  A CR not followed
 *   by LF is an error (Squid just waits).  Since the head is never
 *   forwarded, there is no peer to disagree with about where it ends.
 * - Empty lines before the request line are skipped (RFC 9112 2.2;
 *   Squid does the same).
 * - The request line is strict: single SPs, no HT, no control bytes
 *   (Squid also splits on runs of SP and HT).  A target holding '@'
 *   (userinfo, maybe a password) is refused; what reaches the log is
 *   http_target_redact()'s copy, never the target as sent.
 * - A version of the form HTTP/DIGITS.DIGITS other than 1.0 or 1.1 gets
 *   505; anything else that is not such a version gets 400.  Squid 5.7
 *   answers 505 for 0.0, 0.1, 01.1, 1.01, 1.10, 2.0, 9.9 and 10.0 and 400
 *   for HTTP/1, HTTP/1., http/1.1 and ICAP/1.0; it tunnels 0.9 and 1.2-1.9
 *   as if 1.1, where connectd says 505.
 * - Methods are case-sensitive (RFC 9110 9.1): "connect" gets 405.  Squid
 *   5.7 tunnels it.
 * - obs-fold, whitespace before a colon, and control bytes other than HT
 *   in field values get 400 (Squid accepts fold and control bytes).
 * - More than HTTP_HEADERS_MAX field lines get 431 even when the head is
 *   below the size limit.  Real CONNECT clients send a handful; a client
 *   sending thousands of tiny lines is probing, and the caller parses the
 *   head again each time bytes arrive.  Squid 5.7 has no line cap (only
 *   64 KiB of bytes) and tunnels 10,000 "A: b" lines.
 * - An error in the first HTTP_LINE1_EARLY bytes of the request line is
 *   found as soon as its bytes arrive: a TLS ClientHello sent straight to
 *   the proxy fails on its first byte.  Other lines are checked once
 *   their LF arrives, so that a head that comes a byte at a time costs
 *   what it adds, not the whole head again (each read resumes where the
 *   last one stopped).
 */
#define HTTP_METHOD_MAX		32
#define HTTP_VERSION_MAX	16	/* "HTTP/" DIGITS "." DIGITS */
/* a CONNECT request line is no longer: method, authority, version */
#define HTTP_LINE1_EARLY	(HTTP_METHOD_MAX + AUTHORITY_MAX_LEN + \
				    HTTP_VERSION_MAX + 2)

static int	http_fail(struct http_request *, int, const char *);
static int	http_tchar(unsigned char);
static int	http_hostchar(unsigned char);
static int	http_badbyte(unsigned char, struct http_request *);
static int	http_request_line(const char *, size_t, int,
		    struct http_request *);
static int	http_version(const char *, size_t, int, struct http_request *);
static int	http_authority(const char *, size_t, struct http_request *,
		    int);
static int	http_absolute(const char *, size_t, struct http_request *);
static int	http_port(const char *, size_t, struct http_request *);
static int	http_header(const char *, size_t, int, struct http_request *);

static int
http_fail(struct http_request *req, int status, const char *error)
{
	req->hr_status = status;
	req->hr_error = error;
	return -1;
}

/* RFC 9110 5.6.2 */
static int
http_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
http_hostchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/*
 * The error for a byte that no part of a line may hold.  Every check
 * runs left to right and the first bad byte decides, so that the answer
 * for a prefix of the head is the answer for the whole of it.
 */
static int
http_badbyte(unsigned char c, struct http_request *req)
{
	if (c == '\0')
		return http_fail(req, 400, "nul byte");
	if (c == '\r')
		return http_fail(req, 400, "bare cr");
	return 0;
}

/*
 * The request line p[0..n), without its line end.  If !complete, p holds
 * only what has arrived so far: report an error if it is already certain.
 */
static int
http_request_line(const char *p, size_t n, int complete,
    struct http_request *req)
{
	size_t		 i, m, t;
	unsigned char	 c;
	int		 is_connect, userinfo;

	/* the method first, so that a TLS ClientHello says "bad method" */
	for (i = 0; i < n && p[i] != ' '; i++) {
		if (p[i] == '\0')
			return http_fail(req, 400, "nul byte");
		if (!http_tchar(p[i]) || i >= HTTP_METHOD_MAX)
			return http_fail(req, 400, "bad method");
	}
	if (i == 0 && n > 0)
		return http_fail(req, 400, "bad method");
	if (i == n) {
		if (complete)
			return http_fail(req, 400, "bad request line");
		return 0;
	}
	req->hr_method = p;
	req->hr_method_len = m = i;
	is_connect = m == 7 && memcmp(p, "CONNECT", 7) == 0;

	for (t = ++i; i < n && p[i] != ' '; i++) {
		c = p[i];
		if (http_badbyte(c, req) == -1)
			return -1;
		if (c <= 0x20 || c == 0x7f)
			return http_fail(req, 400, "bad request line");
		if (is_connect && i - t >= AUTHORITY_MAX_LEN)
			return http_fail(req, 400, "target too long");
	}
	if (i == t && i < n)
		return http_fail(req, 400, "bad request line");
	if (i == n) {
		if (!complete)
			return 0;
		if (i == t)
			return http_fail(req, 400, "bad request line");
		req->hr_target = p + t;
		req->hr_target_len = i - t;
		return http_fail(req, 400, "missing version");
	}
	/* the target is complete: set even when it is refused, for the log */
	req->hr_target = p + t;
	req->hr_target_len = i - t;
	userinfo = memchr(p + t, '@', i - t) != NULL;

	i++;
	if (http_version(p + i, n - i, complete, req) == -1)
		return -1;
	if (!complete)
		return 0;

	if (req->hr_version == 0)
		return http_fail(req, 505, "version not supported");
	if (userinfo)
		return http_fail(req, 400, "userinfo in target");
	if (is_connect)
		return http_authority(req->hr_target, req->hr_target_len,
		    req, 0);
	return http_absolute(req->hr_target, req->hr_target_len, req);
}

/*
 * The target of a request to forward: absolute-form (RFC 9112 3.2.2),
 * "http://" authority [path] ["?" query].  Anything else is not a proxy
 * request, or one connectd will not make.
 */
static int
http_absolute(const char *p, size_t n, struct http_request *req)
{
	const char	*a, *end;

	if (n > 0 && (p[0] == '/' || p[0] == '*'))
		return http_fail(req, 400, "not a proxy request (origin-form "
		    "target)");
	if (n >= 8 && strncasecmp(p, "https://", 8) == 0)
		return http_fail(req, 501, "https:// URLs go through CONNECT");
	if (n < 7 || strncasecmp(p, "http://", 7) != 0)
		return http_fail(req, memmem(p, n, "://", 3) != NULL ? 501 : 400,
		    memmem(p, n, "://", 3) != NULL ? "unsupported scheme" :
		    "bad target");
	a = p + 7;
	for (end = a; end < p + n && *end != '/' && *end != '?' && *end != '#';
	    end++)
		;
	if (memchr(a, '#', (size_t)(p + n - a)) != NULL)
		return http_fail(req, 400, "fragment in target");
	if (http_authority(a, (size_t)(end - a), req, 80) == -1)
		return -1;
	req->hr_forward = 1;
	req->hr_path = end;
	req->hr_path_len = (size_t)(p + n - end);
	return 0;
}

/* "HTTP/" 1*DIGIT "." 1*DIGIT; sets hr_version to 10, 11 or 0 (other). */
static int
http_version(const char *p, size_t n, int complete, struct http_request *req)
{
	size_t		 i, major = 0, minor = 0;
	int		 dot = 0;

	for (i = 0; i < n; i++) {
		if (http_badbyte(p[i], req) == -1)
			return -1;
		if (i >= HTTP_VERSION_MAX)
			return http_fail(req, 400, "bad version");
		if (i < 5) {
			if (p[i] != "HTTP/"[i])
				return http_fail(req, 400, "bad version");
		} else if (p[i] >= '0' && p[i] <= '9') {
			if (dot)
				minor++;
			else
				major++;
		} else if (p[i] == '.' && !dot && major > 0)
			dot = 1;
		else
			return http_fail(req, 400, "bad version");
	}
	if (!complete)
		return 0;
	if (minor == 0)
		return http_fail(req, 400, "bad version");
	if (n == 8 && memcmp(p, "HTTP/1.0", 8) == 0)
		req->hr_version = 10;
	else if (n == 8 && memcmp(p, "HTTP/1.1", 8) == 0)
		req->hr_version = 11;
	return 0;
}

/*
 * A name whose last label is a number is an IPv4 address, and only the
 * dotted-quad form is unambiguous: resolvers read 0177.0.0.1, 127.1 or
 * 2130706433 differently (RFC 1123 2.1; no top-level label is numeric).
 */
static int
http_numeric_host(const char *p, size_t n)
{
	char		 addr[INET_ADDRSTRLEN];
	struct in_addr	 in;
	const char	*label;
	size_t		 len, i;

	if (n > 0 && p[n - 1] == '.')
		n--;
	for (label = p + n; label > p && label[-1] != '.'; label--)
		;
	len = (size_t)(p + n - label);
	if (len == 0)
		return 0;
	i = 0;
	if (len > 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X'))
		for (i = 2; i < len && isxdigit((unsigned char)label[i]); i++)
			;
	else
		for (; i < len && isdigit((unsigned char)label[i]); i++)
			;
	if (i < len)
		return 0;
	if (n >= sizeof(addr))
		return -1;
	memcpy(addr, p, n);
	addr[n] = '\0';
	return inet_pton(AF_INET, addr, &in) == 1 ? 0 : -1;
}

/*
 * authority-form: host ":" port, or "[" IPv6 "]" ":" port; the port may
 * be left out (":" too) when dport is not 0.
 */
static int
http_authority(const char *p, size_t n, struct http_request *req, int dport)
{
	char		 addr[INET6_ADDRSTRLEN];
	struct in6_addr	 in6;
	const char	*end, *colon;
	size_t		 i;

	for (i = 0; i + 3 <= n; i++)
		if (memcmp(p + i, "://", 3) == 0)
			return http_fail(req, 400, "absolute-form target");
	if (n > 0 && p[0] == '/')
		return http_fail(req, 400, "origin-form target");
	if (dport != 0 && memchr(p, '@', n) != NULL)
		return http_fail(req, 400, "userinfo in target");

	if (n > 0 && p[0] == '[') {
		if ((end = memchr(p, ']', n)) == NULL)
			return http_fail(req, 400, "bad ipv6 address");
		req->hr_host = p + 1;
		req->hr_host_len = end - (p + 1);
		if (req->hr_host_len == 0)
			return http_fail(req, 400, "empty host");
		if (req->hr_host_len >= sizeof(addr))
			return http_fail(req, 400, "bad ipv6 address");
		memcpy(addr, req->hr_host, req->hr_host_len);
		addr[req->hr_host_len] = '\0';
		if (inet_pton(AF_INET6, addr, &in6) != 1)
			return http_fail(req, 400, "bad ipv6 address");
		colon = end + 1;
		if (colon == p + n && dport != 0) {
			req->hr_port = (uint16_t)dport;
			return 0;
		}
		if (colon == p + n)
			return http_fail(req, 400, "missing port");
		if (*colon != ':')
			return http_fail(req, 400, "bad port");
	} else {
		if ((colon = memchr(p, ':', n)) == NULL && dport != 0)
			colon = p + n;
		if (colon == NULL)
			return http_fail(req, 400, "missing port");
		req->hr_host = p;
		req->hr_host_len = colon - p;
		if (req->hr_host_len == 0)
			return http_fail(req, 400, "empty host");
		if (req->hr_host_len > HOST_NAME_MAX_LEN)
			return http_fail(req, 400, "host too long");
		for (i = 0; i < req->hr_host_len; i++)
			if (!http_hostchar(p[i]))
				return http_fail(req, 400, "bad host");
		if (http_numeric_host(p, req->hr_host_len) == -1)
			return http_fail(req, 400, "ambiguous numeric host");
		if (colon == p + n) {
			req->hr_port = (uint16_t)dport;
			return 0;
		}
	}
	colon++;
	/* "host:" with an empty port is the default port (RFC 3986 3.2.3) */
	if (dport != 0 && colon == p + n) {
		req->hr_port = (uint16_t)dport;
		return 0;
	}
	return http_port(colon, p + n - colon, req);
}

/* 1*5DIGIT, 1..65535 */
static int
http_port(const char *p, size_t n, struct http_request *req)
{
	unsigned int	 port = 0;
	size_t		 i;

	if (n == 0)
		return http_fail(req, 400, "missing port");
	if (n > 5)
		return http_fail(req, 400, "bad port");
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return http_fail(req, 400, "bad port");
		port = port * 10 + (p[i] - '0');
	}
	if (port < 1 || port > 65535)
		return http_fail(req, 400, "bad port");
	req->hr_port = (uint16_t)port;
	return 0;
}

/* One field line p[0..n), n > 0, without its line end. */
static int
http_header(const char *p, size_t n, int complete, struct http_request *req)
{
	size_t		 i, name, v, e;
	unsigned char	 c;
	int		 kind;

	if (p[0] == ' ' || p[0] == '\t')
		return http_fail(req, 400, "obs-fold");
	for (i = 0; i < n && p[i] != ':'; i++) {
		if (http_badbyte(p[i], req) == -1)
			return -1;
		if (p[i] == ' ' || p[i] == '\t') {
			/* which error it is depends on a colon to come */
			if (memchr(p + i, ':', n - i) != NULL)
				return http_fail(req, 400,
				    "space before colon");
			if (complete)
				return http_fail(req, 400,
				    "header without colon");
			return 0;
		}
		if (!http_tchar(p[i]))
			return http_fail(req, 400, "bad header name");
	}
	if (i == 0)
		return http_fail(req, 400, "empty header name");
	if (i == n) {
		if (complete)
			return http_fail(req, 400, "header without colon");
		return 0;
	}
	name = i;
	for (i++; i < n; i++) {
		c = p[i];
		if (http_badbyte(c, req) == -1)
			return -1;
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return http_fail(req, 400, "bad header value");
	}
	if (!complete)
		return 0;
	if (name == 10 && req->hr_user_agent == NULL &&
	    strncasecmp(p, "User-Agent", 10) == 0)
		kind = 1;
	else if (name == 19 && req->hr_proxy_auth == NULL &&
	    strncasecmp(p, "Proxy-Authorization", 19) == 0)
		kind = 2;
	else
		return 0;

	/* the value without OWS */
	for (v = name + 1; v < n && (p[v] == ' ' || p[v] == '\t'); v++)
		;
	for (e = n; e > v && (p[e - 1] == ' ' || p[e - 1] == '\t'); e--)
		;
	if (kind == 2) {
		req->hr_proxy_auth = p + v;
		req->hr_proxy_auth_len = e - v;
		return 0;
	}
	/* cut to what the log keeps */
	req->hr_user_agent = p + v;
	req->hr_user_agent_len = e - v;
	if (req->hr_user_agent_len > USER_AGENT_MAX_LEN)
		req->hr_user_agent_len = USER_AGENT_MAX_LEN;
	return 0;
}

/*
 * What a header of a request to forward means for its framing and its
 * connection (RFC 9112 6, 9.6), refusing what a smuggler would send: two
 * Hosts, two lengths, a length beside a transfer-coding, a coding other
 * than chunked.  p[0..n) is the whole line, already checked.
 */
static int
http_forward_header(struct http_head *st, const char *p, size_t n,
    struct http_request *req)
{
	const char	*v;
	size_t		 name, vl;
	int64_t		 len;

	name = httpmsg_field(p, n, &v, &vl);
#define NAME(s)	(name == sizeof(s) - 1 && strncasecmp(p, s, name) == 0)
	if (NAME("Host")) {
		if (st->hh_seen & HH_HOST)
			return http_fail(req, 400, "several Host fields");
		st->hh_seen |= HH_HOST;
	} else if (NAME("Content-Length")) {
		if (st->hh_seen & HH_CLEN)
			return http_fail(req, 400, "several Content-Length "
			    "fields");
		if (st->hh_seen & HH_TE)
			return http_fail(req, 400, "Content-Length and "
			    "Transfer-Encoding");
		if ((len = httpmsg_content_length(v, vl)) == -1)
			return http_fail(req, 400, "bad Content-Length");
		st->hh_seen |= HH_CLEN;
		st->hh_clen = len;
	} else if (NAME("Transfer-Encoding")) {
		if (st->hh_seen & HH_CLEN)
			return http_fail(req, 400, "Content-Length and "
			    "Transfer-Encoding");
		if (st->hh_seen & HH_TE)
			return http_fail(req, 400, "several Transfer-Encoding "
			    "fields");
		st->hh_seen |= HH_TE;
		/* RFC 9112 6.3: chunked must come last (else 400); codings
		 * before it are not ones connectd would undo (501) */
		if (vl != 7 || strncasecmp(v, "chunked", 7) != 0)
			return http_fail(req, httpmsg_chunked_last(v, vl) ?
			    501 : 400, "transfer-coding other than chunked");
		st->hh_chunked = 1;
	} else if (NAME("Connection") || NAME("Proxy-Connection")) {
		if (httpmsg_list_has(v, vl, "close"))
			st->hh_close = 2;	/* said so: whatever the version */
		if (httpmsg_list_has(v, vl, "keep-alive"))
			st->hh_keepalive = 1;
	}
#undef NAME
	return 0;
}

/* What a complete line gave, kept as offsets from buf. */
static void
http_keep(struct http_field *f, const char *buf, const char *p, size_t len)
{
	if (p == NULL)
		return;
	f->hf_off = (size_t)(p - buf);
	f->hf_len = len;
	f->hf_set = 1;
}

static void
http_give(const struct http_field *f, const char *buf, const char **p,
    size_t *len)
{
	if (!f->hf_set)
		return;
	*p = buf + f->hf_off;
	*len = f->hf_len;
}

/* req from what the complete lines gave, for the buffer as it is now. */
static void
http_view(const struct http_head *st, const char *buf,
    struct http_request *req)
{
	http_give(&st->hh_method, buf, &req->hr_method, &req->hr_method_len);
	http_give(&st->hh_target, buf, &req->hr_target, &req->hr_target_len);
	http_give(&st->hh_host, buf, &req->hr_host, &req->hr_host_len);
	http_give(&st->hh_user_agent, buf, &req->hr_user_agent,
	    &req->hr_user_agent_len);
	http_give(&st->hh_proxy_auth, buf, &req->hr_proxy_auth,
	    &req->hr_proxy_auth_len);
	http_give(&st->hh_path, buf, &req->hr_path, &req->hr_path_len);
	req->hr_port = st->hh_port;
	req->hr_version = st->hh_version;
	req->hr_forward = st->hh_forward;
	req->hr_clen = st->hh_clen;
	req->hr_chunked = st->hh_chunked;
	req->hr_close = st->hh_close;
}

static void
http_save(struct http_head *st, const char *buf,
    const struct http_request *req)
{
	http_keep(&st->hh_method, buf, req->hr_method, req->hr_method_len);
	http_keep(&st->hh_target, buf, req->hr_target, req->hr_target_len);
	http_keep(&st->hh_host, buf, req->hr_host, req->hr_host_len);
	http_keep(&st->hh_user_agent, buf, req->hr_user_agent,
	    req->hr_user_agent_len);
	http_keep(&st->hh_proxy_auth, buf, req->hr_proxy_auth,
	    req->hr_proxy_auth_len);
	http_keep(&st->hh_path, buf, req->hr_path, req->hr_path_len);
	st->hh_port = req->hr_port;
	st->hh_version = req->hr_version;
	st->hh_forward = req->hr_forward;
}

/*
 * Parse the head at the start of buf[0..len), looking at no more than max
 * bytes, going on from where the last call with st stopped: buf holds
 * what it held then, and more.  On ERROR and INCOMPLETE the fields parsed
 * so far are set, for the log: hr_target is set once the target is
 * complete, even if it is refused, and may hold userinfo; log it through
 * http_target_redact().
 *
 * A line is parsed once, when its LF arrives; until then only the LF is
 * looked for, in the bytes not searched yet.  The exception is the start
 * of the request line (as long as a CONNECT line can be), checked as it
 * comes, so that a TLS ClientHello sent to the proxy fails on its first
 * byte.
 */
enum http_parse
http_parse_request(struct http_head *st, const char *buf, size_t len,
    size_t max, struct http_request *req)
{
	const char	*lf;
	size_t		 avail, pos = st->hh_pos, n;

	memset(req, 0, sizeof(*req));
	http_view(st, buf, req);
	avail = len < max ? len : max;

	/* empty lines before the request line */
	while (!st->hh_line1 && pos < avail &&
	    (buf[pos] == '\n' || buf[pos] == '\r')) {
		if (buf[pos] == '\n')
			pos++;
		else if (pos + 1 == avail)
			break;
		else if (buf[pos + 1] == '\n')
			pos += 2;
		else {
			http_fail(req, 400, "bare cr");
			return HTTP_PARSE_ERROR;
		}
		st->hh_pos = pos;
		st->hh_scan = 0;
	}

	while (pos < avail) {
		lf = memchr(buf + pos + st->hh_scan, '\n',
		    avail - pos - st->hh_scan);
		if (lf == NULL) {
			st->hh_scan = avail - pos;
			/* a CR at the end may be the line's, LF to come */
			n = avail - pos;
			if (n > 0 && buf[pos + n - 1] == '\r')
				n--;
			/* its start, as far as a CONNECT line goes: bounded */
			if (!st->hh_line1 && http_request_line(buf + pos,
			    n < HTTP_LINE1_EARLY ? n : HTTP_LINE1_EARLY, 0,
			    req) == -1)
				return HTTP_PARSE_ERROR;
			break;
		}
		n = (size_t)(lf - (buf + pos));
		if (n > 0 && buf[pos + n - 1] == '\r')
			n--;
		if (!st->hh_line1) {
			if (http_request_line(buf + pos, n, 1, req) == -1)
				return HTTP_PARSE_ERROR;
			st->hh_line1 = 1;
			st->hh_clen = -1;
		} else if (n == 0) {
			req->hr_head_len = (size_t)(lf - buf) + 1;
			/* HTTP/1.0 closes unless it asked to keep it */
			req->hr_close = st->hh_close != 0 ||
			    (st->hh_version == 10 && !st->hh_keepalive);
			req->hr_clen = st->hh_clen;
			req->hr_chunked = st->hh_chunked;
			return HTTP_PARSE_DONE;
		} else if (st->hh_nheaders >= HTTP_HEADERS_MAX) {
			http_fail(req, 431, "too many headers");
			return HTTP_PARSE_ERROR;
		} else if (http_header(buf + pos, n, 1, req) == -1 ||
		    (st->hh_forward && http_forward_header(st, buf + pos, n,
		    req) == -1))
			return HTTP_PARSE_ERROR;
		else
			http_keep(&st->hh_lines[st->hh_nheaders++], buf,
			    buf + pos, n);
		http_save(st, buf, req);
		pos = st->hh_pos = (size_t)(lf - buf) + 1;
		st->hh_scan = 0;
	}

	if (len >= max) {
		http_fail(req, 431, "header too large");
		return HTTP_PARSE_ERROR;
	}
	return HTTP_PARSE_INCOMPLETE;
}

const char *
http_status_text(int status)
{
	switch (status) {
	case 200:
		return "Connection established";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 405:
		return "Method Not Allowed";
	case 407:
		return "Proxy Authentication Required";
	case 408:
		return "Request Timeout";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 501:
		return "Not Implemented";
	case 505:
		return "HTTP Version Not Supported";
	}
	return NULL;
}

/*
 * An error reply for status (400 and up, known to http_status_text()).
 * The body is the status text alone: nothing the client sent is echoed.
 * 405 carries the Allow field RFC 9110 15.5.6 requires.
 */
int
http_reply_error(int status, char *buf, size_t len)
{
	return http_reply_challenge(status, NULL, buf, len);
}

/*
 * http_reply_error(), and for a 407 the Proxy-Authenticate field RFC
 * 9110 15.5.8 requires: Basic with realm (no quote or backslash in it:
 * auth_param checks), and charset="UTF-8" as RFC 7617 2.1 allows.
 */
int
http_reply_challenge(int status, const char *realm, char *buf, size_t len)
{
	const char	*text;
	char		 field[256];
	int		 n;

	if (status < 400 || (text = http_status_text(status)) == NULL)
		return -1;
	field[0] = '\0';
	if (status == 405)
		snprintf(field, sizeof(field), "Allow: CONNECT\r\n");
	else if (status == 407)
		snprintf(field, sizeof(field), "Proxy-Authenticate: Basic "
		    "realm=\"%.160s\", charset=\"UTF-8\"\r\n",
		    realm != NULL ? realm : "connectd");
	n = snprintf(buf, len, "HTTP/1.1 %d %s\r\n"
	    "Server: connectd\r\n"
	    "%s"
	    "Content-Type: text/plain\r\n"
	    "Content-Length: %zu\r\n"
	    "Connection: close\r\n"
	    "\r\n"
	    "%s\n",
	    status, text, field, strlen(text) + 1, text);
	if (n < 0 || (size_t)n >= len)
		return -1;
	return n;
}

/* The schemes of absolute-form targets: "scheme://" is their length. */
static size_t
http_scheme_len(const char *t, size_t len)
{
	static const char	*const known[] = { "http", "https", "ws", "wss",
				    "ftp" };
	size_t			 i, n;

	for (i = 0; i < nitems(known); i++) {
		n = strlen(known[i]);
		if (len >= n + 3 && strncasecmp(t, known[i], n) == 0 &&
		    memcmp(t + n, "://", 3) == 0)
			return n + 3;
	}
	return 0;
}

/* out[o..] gets what of s[0..n) fits with a NUL after it; the new o. */
static size_t
http_append(char *out, size_t outlen, size_t o, const char *s, size_t n)
{
	if (n > outlen - 1 - o)
		n = outlen - 1 - o;
	memcpy(out + o, s, n);
	return o + n;
}

/*
 * The request target as it may be logged, into out (outlen > 0, always
 * NUL-terminated, cut if too long).  Userinfo, which may hold a password,
 * becomes "***", and an absolute-form target loses what follows its "?",
 * as Squid's default strip_query_terms does.  In absolute-form (a known
 * scheme) the userinfo is what comes before the last '@' of the
 * authority (RFC 3986 3.2); in anything else, before the last '@' of the
 * whole target, so that a malformed target cannot slip a password past.
 * Returns the length written.
 */
size_t
http_target_redact(const char *t, size_t len, char *out, size_t outlen)
{
	const char	*q;
	size_t		 a, e, rest, o = 0, at = 0;
	int		 have_at = 0;

	if (outlen == 0)
		return 0;
	a = http_scheme_len(t, len);
	for (e = a; e < len && t[e] != '?' && t[e] != '#' &&
	    (a == 0 || t[e] != '/'); e++)
		if (t[e] == '@') {
			at = e;
			have_at = 1;
		}
	/* the scheme, "***" for the userinfo, the rest up to its "?" */
	if (have_at) {
		o = http_append(out, outlen, o, t, a);
		o = http_append(out, outlen, o, "***", 3);
	} else
		at = 0;
	rest = len - at;
	if ((q = memchr(t + at, '?', rest)) != NULL)
		rest = (size_t)(q - (t + at)) + 1;
	o = http_append(out, outlen, o, t + at, rest);
	out[o] = '\0';
	return o;
}

/*
 * The credential of a Proxy-Authorization value "Basic base64(user:pass)"
 * (RFC 7617), decoded: v[0..vl) is the field value without OWS.  Writes
 * "user:pass", NUL-terminated, to out and returns its length; -1 if the
 * value is not Basic, not valid base64, has no colon, a NUL byte, or does
 * not fit outlen.  The caller wipes out (explicit_bzero) when done.
 */
int
http_basic_decode(const char *v, size_t vl, char *out, size_t outlen)
{
	unsigned char	 dec[768];
	const char	*b64;
	size_t		 bl, pad, n;
	int		 got;

	if (vl < 6 || strncasecmp(v, "Basic", 5) != 0 ||
	    (v[5] != ' ' && v[5] != '\t'))
		return -1;
	for (b64 = v + 6, bl = vl - 6; bl > 0 && (*b64 == ' ' ||
	    *b64 == '\t'); b64++, bl--)
		;
	/* whole quads only, and what fits: 1024 base64 bytes, 768 out */
	if (bl == 0 || bl % 4 != 0 || bl > 1024)
		return -1;
	pad = b64[bl - 1] == '=' ? (b64[bl - 2] == '=' ? 2 : 1) : 0;
	/* libcrypto's decoder counts the padding as zero bytes */
	if ((got = EVP_DecodeBlock(dec, (const unsigned char *)b64,
	    (int)bl)) < 0 || (size_t)got < pad)
		goto fail;
	n = (size_t)got - pad;
	if (memchr(dec, ':', n) == NULL || memchr(dec, '\0', n) != NULL ||
	    n >= outlen)
		goto fail;
	memcpy(out, dec, n);
	out[n] = '\0';
	explicit_bzero(dec, sizeof(dec));
	return (int)n;
 fail:
	explicit_bzero(dec, sizeof(dec));
	return -1;
}
