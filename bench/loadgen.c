/*
 * loadgen.c: load generator and origin server for bench/bench.py.
 *
 * Everything runs on loopback; every loop is bounded by a count and a
 * deadline.  Results are printed as one JSON object on stdout.
 *
 *   loadgen origin BYTES
 *	Listen on three 127.0.0.1 ports and print
 *	"{"echo":P,"source":Q,"http":R}".
 *	echo:   echo every byte back; close at the client's EOF.
 *	source: send BYTES bytes, shutdown(SHUT_WR), close at the client's EOF.
 *	http:   an HTTP/1.1 origin with keep-alive: GET (or HEAD) /bytes/N,
 *		in origin-form or absolute-form, is answered 200 with
 *		Content-Length: N and N bytes of the pattern (below); anything
 *		else 404 (no body) or 501 (a request body).  It closes after
 *		the response when the request says Connection: close (or is
 *		HTTP/1.0 without keep-alive).
 *	Exits when its standard input reaches EOF (the parent went away).
 *
 *   loadgen bulk PROXYPORT TARGETPORT BYTES TIMEOUT [STREAMS]
 *	STREAMS (default 1) streams at once from the source port, each
 *	through a tunnel of its own (PROXYPORT 0: direct), each read to
 *	BYTES; reports the MB/s of them all (1 MB = 10^6 bytes).
 *
 *   loadgen tunnels PROXYPORT TARGETPORT COUNT CONC NSRC TIMEOUT [FILE]
 *	COUNT short tunnels, CONC in flight: connect (from 127.0.0.1 ..
 *	127.0.0.NSRC in turn), CONNECT, read the 200, send 1 byte (or the
 *	bytes of FILE, e.g. a ClientHello: the proxy's hello reader then
 *	has a real hello to read), read as many back, close.  PROXYPORT 0:
 *	the same without the CONNECT.
 *
 *   loadgen idle PROXYPORT TARGETPORT N CONC NSRC TIMEOUT
 *	Open N tunnels as above but keep them open after the echo; print the
 *	result, then wait for EOF on standard input (or TIMEOUT) and exit.
 *
 *   loadgen http PROXYPORT ORIGINPORT COUNT CONC BODY SECONDS TIMEOUT
 *	CONC keep-alive connections (through the proxy at PROXYPORT, in
 *	absolute-form, GET http://127.0.0.1:ORIGINPORT/bytes/BODY; PROXYPORT
 *	0: straight to the origin, in origin-form), each sending one GET,
 *	reading the whole response, then sending the next (no pipelining),
 *	until COUNT requests were sent or SECONDS have passed (0: no limit);
 *	the ones under way finish.  A response must be 200 with
 *	Content-Length BODY, no more bytes than that, and the body must be
 *	the origin's pattern; anything else is an error (and that connection
 *	is replaced).  A connection the proxy closes (Connection: close, or
 *	an EOF before any byte of the next response) is replaced; such a
 *	request is sent again once and counted in "retries".  Reports
 *	requests/s, latency per request, connections opened and, for one big
 *	body, MB/s of body (1 MB = 10^6 bytes).
 */
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/resource.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define BULK_BUF	(256 * 1024)
#define MAX_EVENTS	256
#define PAT_PERIOD	65521		/* prime: a lost or moved chunk shows */
#define HREQ_MAX	8192		/* an HTTP request head, at the origin */
#define HRESP_MAX	16384		/* an HTTP response head, at the client */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		die("fcntl");
}

static struct sockaddr_in
loopback(int port, int last_octet)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)last_octet);
	return sin;
}

static int
listen_on(void)
{
	struct sockaddr_in	sin = loopback(0, 1);
	int			fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		die("bind");
	if (listen(fd, 4096) == -1)
		die("listen");
	set_nonblock(fd);
	return fd;
}

static int
bound_port(int fd)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);

	if (getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		die("getsockname");
	return ntohs(sin.sin_port);
}

/* ------------------------------------------------------------ origin */

enum { O_LISTEN_ECHO, O_LISTEN_SOURCE, O_LISTEN_HTTP, O_ECHO, O_SOURCE,
	O_SOURCE_DONE, O_HTTP, O_STDIN };

/* what the HTTP origin keeps per connection */
struct ohttp {
	char		req[HREQ_MAX];	/* request bytes not yet answered */
	size_t		reqlen;
	char		head[256];	/* the response head being sent */
	size_t		hlen, hoff;
	long long	body_left;	/* response body still to send */
	long long	body_off;	/* offset of the next body byte */
	int		close_after;	/* close once this response is out */
	uint32_t	events;		/* what epoll watches now */
};

struct oconn {
	int		kind;
	int		fd;
	long long	left;		/* source: bytes still to send */
	char		pend[512];	/* echo: bytes not yet echoed */
	size_t		npend;
	struct ohttp	*h;		/* http only */
};

static char *bulk_data;

/*
 * The body pattern: byte k of every HTTP response body is
 * pattern[k % PAT_PERIOD]; the buffer holds BULK_BUF bytes more so that
 * a chunk of up to BULK_BUF can start at any offset of the period.
 */
static char *pattern;

static void
pattern_init(void)
{
	size_t i;

	if (pattern != NULL)
		return;
	if ((pattern = malloc(PAT_PERIOD + BULK_BUF)) == NULL)
		die("malloc");
	for (i = 0; i < PAT_PERIOD + BULK_BUF; i++) {
		size_t k = i % PAT_PERIOD;

		pattern[i] = (char)(k * 131 + (k >> 8) + 7);
	}
}

static void
o_close(int ep, struct oconn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->h);
	free(c);
}

static struct oconn *
o_add(int ep, int fd, int kind, uint32_t events)
{
	struct oconn		*c = calloc(1, sizeof(*c));
	struct epoll_event	 ev;

	if (c == NULL)
		die("calloc");
	c->fd = fd;
	c->kind = kind;
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
		die("epoll_ctl");
	return c;
}

static void
o_mod(int ep, struct oconn *c, uint32_t events)
{
	struct epoll_event ev;

	ev.events = events;
	ev.data.ptr = c;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
o_source_write(int ep, struct oconn *c)
{
	ssize_t n;

	while (c->left > 0) {
		size_t want = c->left > BULK_BUF ? BULK_BUF : (size_t)c->left;

		n = write(c->fd, bulk_data, want);
		if (n > 0) {
			c->left -= n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		o_close(ep, c);
		return;
	}
	shutdown(c->fd, SHUT_WR);
	c->kind = O_SOURCE_DONE;
	o_mod(ep, c, EPOLLIN);
}

static void
o_echo(int ep, struct oconn *c, uint32_t events)
{
	char	buf[512];
	ssize_t	n;

	if (c->npend > 0) {		/* finish an earlier echo first */
		n = write(c->fd, c->pend, c->npend);
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			o_close(ep, c);
			return;
		}
		memmove(c->pend, c->pend + n, c->npend - (size_t)n);
		c->npend -= (size_t)n;
		if (c->npend > 0)
			return;
		o_mod(ep, c, EPOLLIN);
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	n = read(c->fd, buf, sizeof(buf));
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {			/* EOF or error: done */
		o_close(ep, c);
		return;
	}
	{
		ssize_t w = write(c->fd, buf, (size_t)n);

		if (w == -1 && errno == EAGAIN)
			w = 0;
		if (w < 0) {
			o_close(ep, c);
			return;
		}
		if (w < n) {
			memcpy(c->pend, buf + w, (size_t)(n - w));
			c->npend = (size_t)(n - w);
			o_mod(ep, c, EPOLLOUT);
		}
	}
}

/* Case-insensitive: does head[0..len) have a field name: with token in its value? */
static int
head_has(const char *head, size_t len, const char *name, const char *token)
{
	const char	*p = head, *end = head + len, *eol, *v;
	size_t		 nl = strlen(name), tl = strlen(token);

	while (p < end && (eol = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 &&
		    p[nl] == ':') {
			for (v = p + nl + 1; v + tl <= eol; v++)
				if (strncasecmp(v, token, tl) == 0)
					return 1;
		}
		p = eol + 1;
	}
	return 0;
}

/* A field's value as a number, or -1 if there is no such field. */
static long long
head_number(const char *head, size_t len, const char *name)
{
	const char	*p = head, *end = head + len, *eol;
	size_t		 nl = strlen(name);

	while (p < end && (eol = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 &&
		    p[nl] == ':') {
			p += nl + 1;
			while (p < eol && (*p == ' ' || *p == '\t'))
				p++;
			if (p == eol || *p < '0' || *p > '9')
				return -2;
			return strtoll(p, NULL, 10);
		}
		p = eol + 1;
	}
	return -1;
}

static const char *
find_crlfcrlf(const char *p, size_t len)
{
	const char *e = memmem(p, len, "\r\n\r\n", 4);

	return e != NULL ? e + 4 : NULL;
}

/* A complete request head is req[0..end): set up its response. */
static void
o_http_request(struct ohttp *h, size_t end)
{
	const char	*req = h->req, *sp1, *sp2, *path;
	long long	 n = -1, clen;
	int		 head_only, v10, status;

	sp1 = memchr(req, ' ', end);
	sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', end - (size_t)(sp1 + 1 - req)) :
	    NULL;
	head_only = sp1 != NULL && sp1 - req == 4 && memcmp(req, "HEAD", 4) == 0;
	v10 = sp2 != NULL && end - (size_t)(sp2 - req) > 9 &&
	    memcmp(sp2 + 1, "HTTP/1.0", 8) == 0;
	h->close_after = head_has(req, end, "Connection", "close") ||
	    (v10 && !head_has(req, end, "Connection", "keep-alive"));
	clen = head_number(req, end, "Content-Length");
	if (sp1 == NULL || sp2 == NULL) {
		status = 400;
		h->close_after = 1;
	} else if (clen > 0 || clen == -2 ||
	    head_has(req, end, "Transfer-Encoding", "")) {
		status = 501;		/* no request bodies here */
		h->close_after = 1;
	} else {
		path = sp1 + 1;
		if (sp2 - path > 7 && strncasecmp(path, "http://", 7) == 0) {
			path = memchr(path + 7, '/', (size_t)(sp2 - path - 7));
			if (path == NULL)
				path = sp2;
		}
		if (sp2 - path > 7 && memcmp(path, "/bytes/", 7) == 0 &&
		    path[7] >= '0' && path[7] <= '9')
			n = strtoll(path + 7, NULL, 10);
		status = n >= 0 && n <= (1LL << 40) &&
		    ((sp1 - req == 3 && memcmp(req, "GET", 3) == 0) ||
		    head_only) ? 200 : 404;
	}
	if (status != 200)
		n = 0;
	h->hlen = (size_t)snprintf(h->head, sizeof(h->head),
	    "HTTP/1.1 %d %s\r\nContent-Type: application/octet-stream\r\n"
	    "Content-Length: %lld\r\n%s\r\n", status,
	    status == 200 ? "OK" : status == 404 ? "Not Found" :
	    status == 501 ? "Not Implemented" : "Bad Request", n,
	    h->close_after ? "Connection: close\r\n" : "");
	h->hoff = 0;
	h->body_left = head_only ? 0 : n;
	h->body_off = 0;
	memmove(h->req, h->req + end, h->reqlen - end);
	h->reqlen -= end;
}

static void
o_http_want(int ep, struct oconn *c, uint32_t events)
{
	struct epoll_event ev;

	if (c->h->events == events)
		return;
	c->h->events = events;
	ev.events = events;
	ev.data.ptr = c;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Answer what has come, one response at a time, then read more. */
static void
o_http(int ep, struct oconn *c)
{
	struct ohttp	*h = c->h;
	struct iovec	 iov[2];
	const char	*end;
	ssize_t		 n;
	size_t		 want;

	for (;;) {
		if (h->hoff < h->hlen || h->body_left > 0) {
			int k = 0;

			if (h->hoff < h->hlen) {
				iov[k].iov_base = h->head + h->hoff;
				iov[k++].iov_len = h->hlen - h->hoff;
			}
			if (h->body_left > 0) {
				want = h->body_left > BULK_BUF ? BULK_BUF :
				    (size_t)h->body_left;
				iov[k].iov_base = pattern +
				    h->body_off % PAT_PERIOD;
				iov[k++].iov_len = want;
			}
			n = writev(c->fd, iov, k);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && errno == EAGAIN) {
				o_http_want(ep, c, EPOLLOUT);
				return;
			}
			if (n <= 0) {
				o_close(ep, c);
				return;
			}
			if (h->hoff < h->hlen) {
				size_t hk = h->hlen - h->hoff;

				if ((size_t)n < hk) {
					h->hoff += (size_t)n;
					continue;
				}
				h->hoff = h->hlen;
				n -= (ssize_t)hk;
			}
			h->body_left -= n;
			h->body_off += n;
			continue;
		}
		if (h->close_after) {
			o_close(ep, c);
			return;
		}
		if ((end = find_crlfcrlf(h->req, h->reqlen)) != NULL) {
			o_http_request(h, (size_t)(end - h->req));
			continue;
		}
		if (h->reqlen == sizeof(h->req)) {
			o_close(ep, c);		/* a head too long */
			return;
		}
		n = read(c->fd, h->req + h->reqlen, sizeof(h->req) - h->reqlen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			o_http_want(ep, c, EPOLLIN);
			return;
		}
		if (n <= 0) {
			o_close(ep, c);
			return;
		}
		h->reqlen += (size_t)n;
	}
}

static int
cmd_origin(long long bytes)
{
	struct epoll_event	 evs[MAX_EVENTS];
	int			 ep, le, ls, lh, i, n, fd;

	if ((bulk_data = malloc(BULK_BUF)) == NULL)
		die("malloc");
	for (i = 0; i < BULK_BUF; i++)
		bulk_data[i] = (char)(i * 131 + (i >> 8));
	pattern_init();
	le = listen_on();
	ls = listen_on();
	lh = listen_on();
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");
	o_add(ep, le, O_LISTEN_ECHO, EPOLLIN);
	o_add(ep, ls, O_LISTEN_SOURCE, EPOLLIN);
	o_add(ep, lh, O_LISTEN_HTTP, EPOLLIN);
	o_add(ep, 0, O_STDIN, EPOLLIN);
	printf("{\"echo\":%d,\"source\":%d,\"http\":%d}\n", bound_port(le),
	    bound_port(ls), bound_port(lh));
	fflush(stdout);

	for (;;) {
		n = epoll_wait(ep, evs, MAX_EVENTS, -1);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (i = 0; i < n; i++) {
			struct oconn *c = evs[i].data.ptr;

			switch (c->kind) {
			case O_STDIN:
				return 0;	/* parent gone or done */
			case O_LISTEN_ECHO:
			case O_LISTEN_SOURCE:
			case O_LISTEN_HTTP:
				while ((fd = accept4(c->fd, NULL, NULL,
				    SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
					if (c->kind == O_LISTEN_HTTP) {
						int one = 1;
						struct oconn *hc;

						setsockopt(fd, IPPROTO_TCP,
						    TCP_NODELAY, &one,
						    sizeof(one));
						hc = o_add(ep, fd, O_HTTP,
						    EPOLLIN);
						if ((hc->h = calloc(1,
						    sizeof(*hc->h))) == NULL)
							die("calloc");
						hc->h->events = EPOLLIN;
					} else if (c->kind == O_LISTEN_ECHO) {
						int one = 1;

						setsockopt(fd, IPPROTO_TCP,
						    TCP_NODELAY, &one,
						    sizeof(one));
						o_add(ep, fd, O_ECHO, EPOLLIN);
					} else {
						struct oconn *s = o_add(ep, fd,
						    O_SOURCE, EPOLLOUT);
						s->left = bytes;
					}
				}
				break;
			case O_ECHO:
				o_echo(ep, c, evs[i].events);
				break;
			case O_SOURCE:
				o_source_write(ep, c);
				break;
			case O_HTTP:
				o_http(ep, c);
				break;
			case O_SOURCE_DONE: {
				char	buf[4096];
				ssize_t	r = read(c->fd, buf, sizeof(buf));

				if (r == 0 || (r == -1 && errno != EAGAIN &&
				    errno != EINTR))
					o_close(ep, c);
				break;
			}
			}
		}
	}
}

/* -------------------------------------------------------------- bulk */

static int
connect_blocking(int port, double deadline)
{
	struct sockaddr_in	sin = loopback(port, 1);
	int			fd;
	struct timeval		tv;
	double			left = deadline - now();

	if (left < 0.1)
		left = 0.1;
	tv.tv_sec = (time_t)left;
	tv.tv_usec = (suseconds_t)((left - (double)tv.tv_sec) * 1e6);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		die("connect");
	return fd;
}

/* Send CONNECT and read the reply head byte by byte (nothing after it). */
static int
proxy_handshake(int fd, int target, char *err, size_t errlen)
{
	char	req[256], head[2048];
	size_t	len = 0;
	int	n;

	n = snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\n"
	    "Host: 127.0.0.1:%d\r\n\r\n", target, target);
	if (write(fd, req, (size_t)n) != n) {
		snprintf(err, errlen, "write CONNECT: %s", strerror(errno));
		return -1;
	}
	while (len < sizeof(head) - 1) {
		ssize_t r = read(fd, head + len, 1);

		if (r <= 0) {
			snprintf(err, errlen, "reading reply: %s",
			    r == 0 ? "EOF" : strerror(errno));
			return -1;
		}
		len++;
		if (len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	head[len] = '\0';
	if (strncmp(head, "HTTP/1.", 7) != 0 || strncmp(head + 9, "200", 3)) {
		snprintf(err, errlen, "reply: %.60s", head);
		return -1;
	}
	return 0;
}

static int
cmd_bulk(int proxy, int target, long long bytes, double timeout, int nstreams)
{
	struct pollfd	pfd[64];
	double		deadline = now() + timeout, t0, t1;
	char		err[256] = "";
	char		*buf = malloc(BULK_BUF);
	long long	got = 0, each[64];
	int		i, live;
	ssize_t		r;

	if (buf == NULL)
		die("malloc");
	if (nstreams < 1 || nstreams > 64)
		die("streams: 1 to 64");
	for (i = 0; i < nstreams; i++) {
		pfd[i].fd = connect_blocking(proxy ? proxy : target, deadline);
		pfd[i].events = POLLIN;
		each[i] = 0;
		if (proxy && proxy_handshake(pfd[i].fd, target, err,
		    sizeof(err)) == -1) {
			printf("{\"error\":\"%s\"}\n", err);
			return 1;
		}
	}
	t0 = now();
	live = nstreams;
	while (live > 0 && now() < deadline) {
		if (nstreams == 1)
			pfd[0].revents = POLLIN;	/* one stream: block in read */
		else if (poll(pfd, (nfds_t)nstreams, 200) <= 0)
			continue;
		for (i = 0; i < nstreams; i++) {
			if (pfd[i].fd < 0 || pfd[i].revents == 0)
				continue;
			r = read(pfd[i].fd, buf, BULK_BUF);
			if (r > 0) {
				each[i] += r;
				got += r;
			}
			if (r == 0 || (r == -1 && errno != EINTR &&
			    errno != EAGAIN) || each[i] >= bytes) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
				live--;
			}
		}
	}
	t1 = now();
	for (i = 0; i < nstreams; i++)
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
	printf("{\"bytes\":%lld,\"streams\":%d,\"secs\":%.6f,\"mbps\":%.1f%s}\n",
	    got, nstreams, t1 - t0, (double)got / (t1 - t0) / 1e6,
	    got < bytes * nstreams ? ",\"error\":\"short read\"" : "");
	return got < bytes * nstreams;
}

/* ---------------------------------------------------- tunnels / idle */

enum { T_CONNECTING, T_REPLY, T_ECHO, T_IDLE };

struct tconn {
	int	fd;
	int	state;
	char	head[512];
	size_t	hlen;
	size_t	echoed;		/* of the payload, read back */
	double	t0;
};

struct tgen {
	int		 ep;
	int		 proxy, target, nsrc, keep;
	long		 count, started, ok, errors;
	double		*lat;		/* per finished tunnel, seconds */
	char		 first_error[200];
	struct tconn	**open;		/* keep: the idle tunnels */
	long		 nopen;
	char		 req[256];
	int		 reqlen;
	char		*payload;	/* sent after the 200: "x" or FILE */
	size_t		 paylen;
};

static void
t_fail(struct tgen *g, struct tconn *c, const char *what, int e)
{
	g->errors++;
	if (g->first_error[0] == '\0')
		snprintf(g->first_error, sizeof(g->first_error), "%s: %s",
		    what, e ? strerror(e) : "unexpected reply");
	close(c->fd);
	free(c);
}

static void
t_done(struct tgen *g, struct tconn *c)
{
	g->lat[g->ok++] = now() - c->t0;
	if (g->keep) {
		epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
		c->state = T_IDLE;
		g->open[g->nopen++] = c;
		return;
	}
	close(c->fd);
	free(c);
}

static int
t_start(struct tgen *g)
{
	struct tconn		*c;
	struct sockaddr_in	 src, dst;
	struct epoll_event	 ev;
	int			 one = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		die("calloc");
	g->started++;
	c->t0 = now();
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		g->errors++;
		snprintf(g->first_error, sizeof(g->first_error), "socket: %s",
		    strerror(errno));
		free(c);
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (g->nsrc > 1) {
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		src = loopback(0, 1 + (int)(g->started % g->nsrc));
		if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) == -1) {
			t_fail(g, c, "bind", errno);
			return -1;
		}
	}
	dst = loopback(g->proxy ? g->proxy : g->target, 1);
	if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) == -1 &&
	    errno != EINPROGRESS) {
		t_fail(g, c, "connect", errno);
		return -1;
	}
	c->state = T_CONNECTING;
	ev.events = EPOLLOUT;
	ev.data.ptr = c;
	if (epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		die("epoll_ctl");
	return 0;
}

static void
t_send_byte(struct tgen *g, struct tconn *c)
{
	/* a few KiB at most: the socket buffer takes it in one write */
	if (write(c->fd, g->payload, g->paylen) != (ssize_t)g->paylen) {
		t_fail(g, c, "write payload", errno);
		return;
	}
	c->state = T_ECHO;
}

static void
t_event(struct tgen *g, struct tconn *c)
{
	struct epoll_event	ev;
	socklen_t		len = sizeof(int);
	int			soerr = 0;
	ssize_t			r;
	char			b[16384];

	switch (c->state) {
	case T_CONNECTING:
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		if (soerr != 0) {
			t_fail(g, c, "connect", soerr);
			return;
		}
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		epoll_ctl(g->ep, EPOLL_CTL_MOD, c->fd, &ev);
		if (g->proxy == 0) {
			t_send_byte(g, c);
			return;
		}
		if (write(c->fd, g->req, (size_t)g->reqlen) != g->reqlen) {
			t_fail(g, c, "write CONNECT", errno);
			return;
		}
		c->state = T_REPLY;
		return;
	case T_REPLY:
		r = read(c->fd, c->head + c->hlen, sizeof(c->head) - 1 - c->hlen);
		if (r == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			t_fail(g, c, "reading reply", r == 0 ? ECONNRESET : errno);
			return;
		}
		c->hlen += (size_t)r;
		c->head[c->hlen] = '\0';
		if (strstr(c->head, "\r\n\r\n") == NULL) {
			if (c->hlen >= sizeof(c->head) - 1)
				t_fail(g, c, "reply too long", 0);
			return;
		}
		if (strncmp(c->head, "HTTP/1.", 7) != 0 ||
		    strncmp(c->head + 9, "200", 3) != 0) {
			t_fail(g, c, "CONNECT refused", 0);
			return;
		}
		/* the reply head is all a proxy sends before the echo */
		t_send_byte(g, c);
		return;
	case T_ECHO:
		r = read(c->fd, b, sizeof(b));
		if (r == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0 || c->echoed + (size_t)r > g->paylen) {
			t_fail(g, c, "reading echo", r == 0 ? ECONNRESET :
			    r < 0 ? errno : 0);
			return;
		}
		if ((c->echoed += (size_t)r) == g->paylen)
			t_done(g, c);
		return;
	}
}

/* The whole of a small file, malloc'd.  0, or -1 (errno). */
static int
read_file(const char *path, char **data, size_t *len)
{
	char	*p;
	FILE	*f;
	long	 n;

	if ((f = fopen(path, "rb")) == NULL)
		return -1;
	if (fseek(f, 0, SEEK_END) == -1 || (n = ftell(f)) <= 0 ||
	    n > 16384 || fseek(f, 0, SEEK_SET) == -1 ||
	    (p = malloc((size_t)n)) == NULL) {
		fclose(f);
		errno = EINVAL;
		return -1;
	}
	if (fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		fclose(f);
		return -1;
	}
	fclose(f);
	*data = p;
	*len = (size_t)n;
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
cmd_tunnels(int proxy, int target, long count, int conc, int nsrc,
    double timeout, int keep, const char *file)
{
	struct epoll_event	 evs[MAX_EVENTS];
	struct tgen		 g;
	double			 t0, t1, deadline;
	long			 inflight;
	int			 i, n;

	memset(&g, 0, sizeof(g));
	g.proxy = proxy;
	g.target = target;
	g.count = count;
	g.nsrc = nsrc;
	g.keep = keep;
	g.lat = calloc((size_t)count, sizeof(double));
	g.open = calloc((size_t)count, sizeof(*g.open));
	if (g.lat == NULL || g.open == NULL)
		die("calloc");
	g.payload = "x";
	g.paylen = 1;
	if (file != NULL && read_file(file, &g.payload, &g.paylen) == -1)
		die(file);
	g.reqlen = snprintf(g.req, sizeof(g.req),
	    "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
	    target, target);
	if ((g.ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");

	t0 = now();
	deadline = t0 + timeout;
	for (;;) {
		inflight = g.started - g.ok - g.errors;
		while (inflight < conc && g.started < count) {
			t_start(&g);
			inflight = g.started - g.ok - g.errors;
		}
		if (inflight == 0 || now() >= deadline)
			break;
		n = epoll_wait(g.ep, evs, MAX_EVENTS, 100);
		for (i = 0; i < n; i++)
			t_event(&g, evs[i].data.ptr);
	}
	t1 = now();

	qsort(g.lat, (size_t)g.ok, sizeof(double), cmp_double);
	printf("{\"ok\":%ld,\"errors\":%ld,\"unfinished\":%ld,\"secs\":%.6f,"
	    "\"rate\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
	    "\"first_error\":\"%s\"}\n",
	    g.ok, g.errors, g.started - g.ok - g.errors, t1 - t0,
	    (double)g.ok / (t1 - t0),
	    g.ok ? g.lat[g.ok / 2] * 1e3 : 0.,
	    g.ok ? g.lat[(long)((double)g.ok * 0.99)] * 1e3 : 0.,
	    g.first_error);
	fflush(stdout);

	if (keep) {
		/* hold the tunnels until stdin closes or the deadline */
		struct pollfd	pfd = { 0, POLLIN, 0 };
		char		buf[64];
		double		end = now() + timeout;

		while (now() < end) {
			if (poll(&pfd, 1, 200) == 1 &&
			    read(0, buf, sizeof(buf)) <= 0)
				break;
			if (pfd.revents & (POLLHUP | POLLERR))
				break;
		}
		for (i = 0; i < g.nopen; i++)
			close(g.open[i]->fd);
	}
	return g.errors != 0;
}

/* -------------------------------------------------------------- http */

enum { H_CONNECTING, H_HEAD, H_BODY };

struct hconn {
	int		fd;
	int		state;
	int		nreq;		/* responses complete on it */
	int		has_req;	/* a request is under way */
	int		resent;		/* ... and it is the second try */
	int		close_after;	/* the response said Connection: close */
	char		head[HRESP_MAX];
	size_t		hlen;
	long long	body_left, body_off;
	double		t0;		/* the request under way was first sent */
};

struct hgen {
	int		 ep;
	int		 proxy, origin;
	long		 count, sent, ok, errors, retries, conns, active;
	long		 inflight;
	long long	 body;		/* the expected body length */
	long long	 body_bytes;	/* body bytes read and checked */
	double		 stop_at;	/* no new request after this */
	double		*lat;
	char		 first_error[200];
	char		 req[512];
	int		 reqlen;
	char		*scratch;
};

static void	h_open(struct hgen *, int, double);
static void	h_retry(struct hgen *, struct hconn *);

/* Keep an error's text printable and safe inside a JSON string. */
static void
h_note(struct hgen *g, const char *fmt, const char *what, const char *detail)
{
	char	*p;

	if (g->first_error[0] != '\0')
		return;
	snprintf(g->first_error, sizeof(g->first_error), fmt, what, detail);
	for (p = g->first_error; *p != '\0'; p++)
		if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
			*p = ' ';
}

static int
h_more(struct hgen *g)
{
	return g->sent < g->count && now() < g->stop_at;
}

static void
h_drop(struct hgen *g, struct hconn *c)
{
	epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->has_req)
		g->inflight--;
	g->active--;
	free(c);
}

/* The request under way (or the connection) failed; replace the connection. */
static void
h_fail(struct hgen *g, struct hconn *c, const char *what, const char *detail)
{
	g->errors++;
	h_note(g, "%s: %s", what, detail);
	h_drop(g, c);
	/* a target that fails everything is not hammered until the deadline */
	if (h_more(g) && !(g->errors >= 100 && g->errors > g->ok))
		h_open(g, 0, 0.);
}

static void
h_want(struct hgen *g, struct hconn *c, uint32_t events)
{
	struct epoll_event ev;

	ev.events = events;
	ev.data.ptr = c;
	epoll_ctl(g->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Send the next request (resend: the one under way, again) or retire. */
static void
h_send(struct hgen *g, struct hconn *c)
{
	ssize_t n;

	if (!c->has_req) {
		if (!h_more(g)) {
			h_drop(g, c);
			return;
		}
		g->sent++;
		g->inflight++;
		c->has_req = 1;
		c->t0 = now();
	}
	n = write(c->fd, g->req, (size_t)g->reqlen);
	if (n == -1 && (errno == EPIPE || errno == ECONNRESET) &&
	    c->nreq > 0 && !c->resent) {
		h_retry(g, c);		/* it closed the kept-alive connection */
		return;
	}
	if (n != g->reqlen) {
		h_fail(g, c, "write request", n == -1 ? strerror(errno) :
		    "short write");
		return;
	}
	c->state = H_HEAD;
	c->hlen = 0;
}

/* The response is complete and correct. */
static void
h_done(struct hgen *g, struct hconn *c)
{
	g->lat[g->ok++] = now() - c->t0;
	g->inflight--;
	c->has_req = 0;
	c->resent = 0;
	c->nreq++;
	if (c->close_after) {
		h_drop(g, c);
		if (h_more(g))
			h_open(g, 0, 0.);
		return;
	}
	h_send(g, c);
}

/*
 * The proxy closed a kept-alive connection before a byte of the
 * response: what a client does, send the request once more on a new one.
 */
static void
h_retry(struct hgen *g, struct hconn *c)
{
	double t0 = c->t0;

	g->retries++;
	c->has_req = 0;		/* it moves to the new connection */
	g->inflight--;
	h_drop(g, c);
	g->sent--;		/* h_open's connection sends it again */
	h_open(g, 1, t0);
}

/* Check body bytes against the pattern; -1 if they differ. */
static int
h_body(struct hgen *g, struct hconn *c, const char *p, size_t n)
{
	if ((long long)n > c->body_left) {
		h_fail(g, c, "response", "more bytes than its Content-Length");
		return -1;
	}
	if (memcmp(p, pattern + c->body_off % PAT_PERIOD, n) != 0) {
		h_fail(g, c, "response", "the body differs from what the "
		    "origin sent");
		return -1;
	}
	c->body_left -= (long long)n;
	c->body_off += (long long)n;
	g->body_bytes += (long long)n;
	return 0;
}

/* A complete head is head[0..hl): check it; the rest is body. */
static int
h_head(struct hgen *g, struct hconn *c, size_t hl)
{
	char		 line[80];
	long long	 clen;
	size_t		 ll;

	if (c->hlen < 12 || memcmp(c->head, "HTTP/1.", 7) != 0 ||
	    memcmp(c->head + 8, " 200", 4) != 0) {
		ll = strcspn(c->head, "\r\n");
		snprintf(line, sizeof(line), "%.*s", (int)(ll < 60 ? ll : 60),
		    c->head);
		h_fail(g, c, "status", line);
		return -1;
	}
	if (head_has(c->head, hl, "Transfer-Encoding", "")) {
		h_fail(g, c, "response", "Transfer-Encoding, not Content-Length");
		return -1;
	}
	if ((clen = head_number(c->head, hl, "Content-Length")) != g->body) {
		snprintf(line, sizeof(line), "%lld, expected %lld", clen,
		    g->body);
		h_fail(g, c, "Content-Length", line);
		return -1;
	}
	c->close_after = head_has(c->head, hl, "Connection", "close") ||
	    (memcmp(c->head, "HTTP/1.0", 8) == 0 &&
	    !head_has(c->head, hl, "Connection", "keep-alive"));
	c->body_left = clen;
	c->body_off = 0;
	c->state = H_BODY;
	return h_body(g, c, c->head + hl, c->hlen - hl);
}

static void
h_event(struct hgen *g, struct hconn *c)
{
	socklen_t	 len = sizeof(int);
	int		 soerr = 0;
	const char	*end;
	ssize_t		 n;

	if (c->state == H_CONNECTING) {
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		if (soerr != 0) {
			h_fail(g, c, "connect", strerror(soerr));
			return;
		}
		h_want(g, c, EPOLLIN);
		h_send(g, c);
		return;
	}
	for (;;) {
		if (c->state == H_HEAD)
			n = read(c->fd, c->head + c->hlen,
			    sizeof(c->head) - 1 - c->hlen);
		else
			n = read(c->fd, g->scratch, BULK_BUF);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0 && c->state == H_HEAD && c->hlen == 0 &&
		    c->nreq > 0 && !c->resent) {
			h_retry(g, c);
			return;
		}
		if (n <= 0) {
			h_fail(g, c, c->state == H_HEAD ? "reading response "
			    "head" : "reading response body", n == 0 ?
			    "EOF" : strerror(errno));
			return;
		}
		if (c->state == H_HEAD) {
			c->hlen += (size_t)n;
			c->head[c->hlen] = '\0';
			if ((end = find_crlfcrlf(c->head, c->hlen)) == NULL) {
				if (c->hlen == sizeof(c->head) - 1) {
					h_fail(g, c, "response", "head too long");
					return;
				}
				continue;
			}
			if (h_head(g, c, (size_t)(end - c->head)) == -1)
				return;
		} else if (h_body(g, c, g->scratch, (size_t)n) == -1)
			return;
		if (c->body_left == 0) {
			h_done(g, c);
			return;
		}
	}
}

/* A new connection; resend: it carries a request sent first at t0. */
static void
h_open(struct hgen *g, int resend, double t0)
{
	struct hconn		*c;
	struct sockaddr_in	 dst;
	struct epoll_event	 ev;
	int			 one = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		die("calloc");
	g->conns++;
	g->active++;
	if (resend) {
		g->sent++;
		g->inflight++;
		c->has_req = 1;
		c->resent = 1;
		c->t0 = t0;
	}
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1)
		die("socket");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = H_CONNECTING;
	ev.events = EPOLLOUT;
	ev.data.ptr = c;
	if (epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
		die("epoll_ctl");
	dst = loopback(g->proxy ? g->proxy : g->origin, 1);
	if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) == -1 &&
	    errno != EINPROGRESS)
		h_fail(g, c, "connect", strerror(errno));
}

static int
cmd_http(int proxy, int origin, long count, int conc, long long body,
    double seconds, double timeout)
{
	struct epoll_event	 evs[MAX_EVENTS];
	struct rusage		 ru;
	struct hgen		 g;
	double			 t0, t1, deadline;
	long			 i;
	int			 n;

	memset(&g, 0, sizeof(g));
	pattern_init();
	g.proxy = proxy;
	g.origin = origin;
	g.count = count;
	g.body = body;
	g.lat = calloc((size_t)count, sizeof(double));
	g.scratch = malloc(BULK_BUF);
	if (g.lat == NULL || g.scratch == NULL)
		die("calloc");
	if (proxy)
		g.reqlen = snprintf(g.req, sizeof(g.req),
		    "GET http://127.0.0.1:%d/bytes/%lld HTTP/1.1\r\n"
		    "Host: 127.0.0.1:%d\r\nUser-Agent: loadgen/1\r\n"
		    "Accept: */*\r\n\r\n", origin, body, origin);
	else
		g.reqlen = snprintf(g.req, sizeof(g.req),
		    "GET /bytes/%lld HTTP/1.1\r\n"
		    "Host: 127.0.0.1:%d\r\nUser-Agent: loadgen/1\r\n"
		    "Accept: */*\r\n\r\n", body, origin);
	if ((g.ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");

	t0 = now();
	deadline = t0 + timeout;
	g.stop_at = seconds > 0 ? t0 + seconds : deadline;
	for (i = 0; i < conc && i < count; i++)
		h_open(&g, 0, 0.);
	while (g.active > 0 && now() < deadline) {
		n = epoll_wait(g.ep, evs, MAX_EVENTS, 100);
		for (i = 0; i < n; i++)
			h_event(&g, evs[i].data.ptr);
	}
	t1 = now();
	getrusage(RUSAGE_SELF, &ru);

	qsort(g.lat, (size_t)g.ok, sizeof(double), cmp_double);
	printf("{\"ok\":%ld,\"errors\":%ld,\"unfinished\":%ld,\"retries\":%ld,"
	    "\"conns\":%ld,\"secs\":%.6f,\"rate\":%.1f,\"p50_ms\":%.3f,"
	    "\"p99_ms\":%.3f,\"body_bytes\":%lld,\"mbps\":%.1f,"
	    "\"client_cpu_s\":%.3f,\"first_error\":\"%s\"}\n",
	    g.ok, g.errors, g.inflight, g.retries, g.conns, t1 - t0,
	    (double)g.ok / (t1 - t0),
	    g.ok ? g.lat[g.ok / 2] * 1e3 : 0.,
	    g.ok ? g.lat[(long)((double)g.ok * 0.99)] * 1e3 : 0.,
	    g.body_bytes, (double)g.body_bytes / (t1 - t0) / 1e6,
	    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
	    g.first_error);
	fflush(stdout);
	return g.errors != 0 || g.inflight != 0;
}

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && strcmp(argv[1], "origin") == 0)
		return cmd_origin(atoll(argv[2]));
	if ((argc == 6 || argc == 7) && strcmp(argv[1], "bulk") == 0)
		return cmd_bulk(atoi(argv[2]), atoi(argv[3]), atoll(argv[4]),
		    atof(argv[5]), argc == 7 ? atoi(argv[6]) : 1);
	if ((argc == 8 || argc == 9) && (strcmp(argv[1], "tunnels") == 0 ||
	    strcmp(argv[1], "idle") == 0))
		return cmd_tunnels(atoi(argv[2]), atoi(argv[3]), atol(argv[4]),
		    atoi(argv[5]), atoi(argv[6]), atof(argv[7]),
		    strcmp(argv[1], "idle") == 0, argc == 9 ? argv[8] : NULL);
	if (argc == 9 && strcmp(argv[1], "http") == 0)
		return cmd_http(atoi(argv[2]), atoi(argv[3]), atol(argv[4]),
		    atoi(argv[5]), atoll(argv[6]), atof(argv[7]),
		    atof(argv[8]));
	fprintf(stderr, "usage: loadgen origin BYTES\n"
	    "       loadgen bulk PROXYPORT TARGETPORT BYTES TIMEOUT [STREAMS]\n"
	    "       loadgen tunnels|idle PROXYPORT TARGETPORT COUNT CONC NSRC "
	    "TIMEOUT [FILE]\n"
	    "       loadgen http PROXYPORT ORIGINPORT COUNT CONC BODY SECONDS "
	    "TIMEOUT\n");
	return 2;
}
