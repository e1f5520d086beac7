/*
 * loadgen.c: load generator and origin server for bench/bench.py.
 *
 * Everything runs on loopback; every loop is bounded by a count and a
 * deadline.  Results are printed as one JSON object on stdout.
 *
 *   loadgen origin BYTES
 *	Listen on two 127.0.0.1 ports and print "{"echo":P,"source":Q}".
 *	echo:   echo every byte back; close at the client's EOF.
 *	source: send BYTES bytes, shutdown(SHUT_WR), close at the client's EOF.
 *	Exits when its standard input reaches EOF (the parent went away).
 *
 *   loadgen bulk PROXYPORT TARGETPORT BYTES TIMEOUT
 *	One stream from the source port, through a tunnel (PROXYPORT 0:
 *	direct); reads to EOF and reports MB/s (1 MB = 10^6 bytes).
 *
 *   loadgen tunnels PROXYPORT TARGETPORT COUNT CONC NSRC TIMEOUT
 *	COUNT short tunnels, CONC in flight: connect (from 127.0.0.1 ..
 *	127.0.0.NSRC in turn), CONNECT, read the 200, send 1 byte, read it
 *	back, close.  PROXYPORT 0: the same without the CONNECT.
 *
 *   loadgen idle PROXYPORT TARGETPORT N CONC NSRC TIMEOUT
 *	Open N tunnels as above but keep them open after the echo; print the
 *	result, then wait for EOF on standard input (or TIMEOUT) and exit.
 */
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

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
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define BULK_BUF	(256 * 1024)
#define MAX_EVENTS	256

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

enum { O_LISTEN_ECHO, O_LISTEN_SOURCE, O_ECHO, O_SOURCE, O_SOURCE_DONE,
	O_STDIN };

struct oconn {
	int		kind;
	int		fd;
	long long	left;		/* source: bytes still to send */
	char		pend[512];	/* echo: bytes not yet echoed */
	size_t		npend;
};

static char *bulk_data;

static void
o_close(int ep, struct oconn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
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

static int
cmd_origin(long long bytes)
{
	struct epoll_event	 evs[MAX_EVENTS];
	int			 ep, le, ls, i, n, fd;

	if ((bulk_data = malloc(BULK_BUF)) == NULL)
		die("malloc");
	for (i = 0; i < BULK_BUF; i++)
		bulk_data[i] = (char)(i * 131 + (i >> 8));
	le = listen_on();
	ls = listen_on();
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");
	o_add(ep, le, O_LISTEN_ECHO, EPOLLIN);
	o_add(ep, ls, O_LISTEN_SOURCE, EPOLLIN);
	o_add(ep, 0, O_STDIN, EPOLLIN);
	printf("{\"echo\":%d,\"source\":%d}\n", bound_port(le), bound_port(ls));
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
				while ((fd = accept4(c->fd, NULL, NULL,
				    SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
					if (c->kind == O_LISTEN_ECHO) {
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
cmd_bulk(int proxy, int target, long long bytes, double timeout)
{
	double		deadline = now() + timeout, t0, t1;
	char		err[256] = "";
	char		*buf = malloc(BULK_BUF);
	long long	got = 0;
	int		fd;
	ssize_t		r;

	if (buf == NULL)
		die("malloc");
	fd = connect_blocking(proxy ? proxy : target, deadline);
	if (proxy && proxy_handshake(fd, target, err, sizeof(err)) == -1) {
		printf("{\"error\":\"%s\"}\n", err);
		return 1;
	}
	t0 = now();
	while (got < bytes && now() < deadline) {
		r = read(fd, buf, BULK_BUF);
		if (r > 0)
			got += r;
		else if (r == -1 && errno == EINTR)
			continue;
		else
			break;
	}
	t1 = now();
	close(fd);
	printf("{\"bytes\":%lld,\"secs\":%.6f,\"mbps\":%.1f%s}\n", got, t1 - t0,
	    (double)got / (t1 - t0) / 1e6,
	    got < bytes ? ",\"error\":\"short read\"" : "");
	return got < bytes;
}

/* ---------------------------------------------------- tunnels / idle */

enum { T_CONNECTING, T_REPLY, T_ECHO, T_IDLE };

struct tconn {
	int	fd;
	int	state;
	char	head[512];
	size_t	hlen;
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
	if (write(c->fd, "x", 1) != 1) {
		t_fail(g, c, "write byte", errno);
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
	char			b;

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
		r = read(c->fd, &b, 1);
		if (r == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r != 1) {
			t_fail(g, c, "reading echo", r == 0 ? ECONNRESET : errno);
			return;
		}
		t_done(g, c);
		return;
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
cmd_tunnels(int proxy, int target, long count, int conc, int nsrc,
    double timeout, int keep)
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

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && strcmp(argv[1], "origin") == 0)
		return cmd_origin(atoll(argv[2]));
	if (argc == 6 && strcmp(argv[1], "bulk") == 0)
		return cmd_bulk(atoi(argv[2]), atoi(argv[3]), atoll(argv[4]),
		    atof(argv[5]));
	if (argc == 8 && (strcmp(argv[1], "tunnels") == 0 ||
	    strcmp(argv[1], "idle") == 0))
		return cmd_tunnels(atoi(argv[2]), atoi(argv[3]), atol(argv[4]),
		    atoi(argv[5]), atoi(argv[6]), atof(argv[7]),
		    strcmp(argv[1], "idle") == 0);
	fprintf(stderr, "usage: loadgen origin BYTES\n"
	    "       loadgen bulk PROXYPORT TARGETPORT BYTES TIMEOUT\n"
	    "       loadgen tunnels|idle PROXYPORT TARGETPORT COUNT CONC NSRC "
	    "TIMEOUT\n");
	return 2;
}
