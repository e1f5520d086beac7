/* sinknet.c: the writers of network log outputs: TCP with acknowledged lines, UDP datagrams, RFC 5424 syslog */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <linux/tcp.h>		/* tcpi_bytes_acked: glibc's tcp_info lacks it */

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connectd.h"
#include "sink.h"

#define SINK_BACKOFF_MIN	0.5	/* Squid's TcpLogger retries every 0.5 s */
#define SINK_BACKOFF_MAX	30.0	/* ... connectd backs off up to this */
#define SINK_CONNECT_TIMEOUT	10.0	/* seconds for one TCP connect() */
#define SINK_SLICE_MS		100	/* a blocked writer checks for abort */
#define SINK_ACK_POLL		0.05	/* lines in flight: acks read this often */
#define SINK_IDLE_POLL		1.0	/* an idle connection checked this often */
#define SINK_CLOSE_WAIT		2.0	/* last acks awaited from a closing peer */
#define SINK_DEVLOG		"/dev/log"
#define SINK_SYSLOG_APP		"connectd"	/* RFC 5424 APP-NAME */
#define SINK_SYSLOG_MSGID	"access"	/* RFC 5424 MSGID */

/*
 * RFC 5424 6.2.4: HOSTNAME is PRINTUSASCII, at most 255 of them, or "-";
 * the longest line a datagram then holds is what the header leaves
 * (the line's newline is not sent: RFC 5424 messages do not end in one).
 */
static void
sink_syslog_init(struct sink *s, size_t dgram)
{
	char	*c;
	size_t	 hdr;

	if (gethostname(s->s_hostname, sizeof(s->s_hostname)) == -1 ||
	    s->s_hostname[0] == '\0')
		snprintf(s->s_hostname, sizeof(s->s_hostname), "-");
	s->s_hostname[sizeof(s->s_hostname) - 1] = '\0';
	for (c = s->s_hostname; *c != '\0'; c++)
		if (*c <= ' ' || *c > '~')
			*c = '_';
	snprintf(s->s_procid, sizeof(s->s_procid), "%ld", (long)getpid());
	/* <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG */
	hdr = (size_t)snprintf(NULL, 0, "<%d>1 ", s->s_pri) +
	    (TIMEFMT_RFC3339_LEN - 1) + 1 + strlen(s->s_hostname) + 1 +
	    strlen(SINK_SYSLOG_APP) + 1 + strlen(s->s_procid) + 1 +
	    strlen(SINK_SYSLOG_MSGID) + 3;
	s->s_linemax = dgram > hdr ? dgram - hdr + 1 : 1;
}

int
sink_net_init(struct sink *s, const struct access_log_conf *alc)
{
	switch (s->s_kind) {
	case ALK_UDP:
		/* the line goes with its newline: Fluent Bit's in_udp splits
		   on it with Format none, and skips it with Format json */
		s->s_linemax = alc->alc_datagram_size;
		break;
	case ALK_SYSLOG:
		s->s_pri = alc->alc_facility * 8 + alc->alc_severity;
		if (s->s_path == NULL && s->s_host == NULL &&
		    (s->s_path = strdup(SINK_DEVLOG)) == NULL)
			return -1;
		sink_syslog_init(s, alc->alc_datagram_size);
		break;
	default:
		break;
	}
	return 0;
}

/*
 * Lines go back to the front of the queue, in their order, ahead of
 * those that came since: a line that did not (or may not) reach the
 * receiver is sent again whole on the next connection, never as the
 * rest of a fragment.  They stay counted in s_bytes.
 */
static void
sink_unshift_locked(struct sink *s, char *data, size_t len)
{
	if (sink_grow_locked(s) == -1) {
		/* no memory for the slot: the line is lost, and counted */
		free(data);
		s->s_bytes -= len;
		s->s_dropped++;
		return;
	}
	s->s_qhead = (s->s_qhead + s->s_qcap - 1) % s->s_qcap;
	s->s_q[s->s_qhead].iov_base = data;
	s->s_q[s->s_qhead].iov_len = len;
	s->s_qlen++;
}

/*
 * Waits at most SINK_SLICE_MS for events on fd, so that a writer that
 * waits for a receiver still hears abort.  -1 on abort.
 */
static int
sink_poll(struct sink *s, int fd, short events, short *revents)
{
	struct pollfd	 pfd;
	int		 abort;

	pfd.fd = fd;
	pfd.events = events;
	pfd.revents = 0;
	*revents = poll(&pfd, 1, SINK_SLICE_MS) > 0 ? pfd.revents : 0;
	pthread_mutex_lock(&s->s_mtx);
	abort = s->s_abort;
	pthread_mutex_unlock(&s->s_mtx);
	return abort ? -1 : 0;
}

/* Whole lines, never signals: a peer gone gives EPIPE, not SIGPIPE. */
static ssize_t
sink_sendv(int fd, struct iovec *iov, int n)
{
	struct msghdr	 m;

	memset(&m, 0, sizeof(m));
	m.msg_iov = iov;
	m.msg_iovlen = (size_t)n;
	return sendmsg(fd, &m, MSG_NOSIGNAL);
}

/* A connection failed or broke: count it, say why (rate-limited). */
static void
sink_note_failure(struct sink *s, const char *why)
{
	char	 msg[512];
	int	 report;

	pthread_mutex_lock(&s->s_mtx);
	snprintf(s->s_why, sizeof(s->s_why), "%s", why);
	s->s_connfail++;
	s->s_up = 0;
	report = sink_report_locked(s, 0, msg, sizeof(msg));
	pthread_mutex_unlock(&s->s_mtx);
	if (report)
		log_warnx("%s", msg);
}

/*
 * A connection attempt failed: the next waits SINK_BACKOFF_MIN, then
 * twice as long each time up to SINK_BACKOFF_MAX (Squid's TcpLogger
 * retries every 0.5 s forever; a receiver down for a day should not get
 * 170000 attempts).
 */
static void
sink_failed(struct sink *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sink_failed(struct sink *s, const char *fmt, ...)
{
	va_list	 ap;
	char	 why[160];

	if (s->s_backoff < SINK_BACKOFF_MIN)
		s->s_backoff = SINK_BACKOFF_MIN;
	s->s_retry = sink_mono() + s->s_backoff;
	s->s_backoff *= 2;
	if (s->s_backoff > SINK_BACKOFF_MAX)
		s->s_backoff = SINK_BACKOFF_MAX;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	sink_note_failure(s, why);
}

/* A connection is up: count it, and say so if it follows failures. */
static void
sink_connected(struct sink *s, const struct sockaddr *sa)
{
	struct sockaddr_storage	 ss;
	char			 addr[ADDR_STRLEN], msg[512];
	int			 port, report = 0, restored;
	time_t			 now = time(NULL);

	memset(&ss, 0, sizeof(ss));
	if (sa->sa_family == AF_UNIX)
		snprintf(s->s_peer, sizeof(s->s_peer), "%s", s->s_path);
	else {
		memcpy(&ss, sa, sa->sa_family == AF_INET6 ?
		    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
		if (addr_ntop(&ss, addr, sizeof(addr), &port) == -1)
			snprintf(s->s_peer, sizeof(s->s_peer), "?");
		else
			snprintf(s->s_peer, sizeof(s->s_peer),
			    ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
			    addr, port);
	}
	s->s_sent = 0;
	s->s_polled = sink_mono();
	pthread_mutex_lock(&s->s_mtx);
	if (s->s_connected)
		s->s_reconnects++;
	s->s_up = 1;
	restored = s->s_connfail > 0 && now >= s->s_rep_up +
	    SINK_REPORT_INTERVAL;
	if (restored) {
		s->s_rep_up = now;
		/* failures not reported yet go with this news */
		report = sink_report_locked(s, 1, msg, sizeof(msg));
	}
	pthread_mutex_unlock(&s->s_mtx);
	s->s_connected = 1;
	if (report)
		log_warnx("%s", msg);
	else if (restored)
		log_info("access log %s: connected again to %s", s->s_name,
		    s->s_peer);
}

/* syslog to a unix datagram socket: /dev/log, or server=unix:PATH */
static int
sink_connect_unix(struct sink *s)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", s->s_path);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		sink_failed(s, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		sink_failed(s, "connect to %s: %s", s->s_path, strerror(errno));
		close(fd);
		return -1;
	}
	s->s_fd = fd;
	sink_connected(s, (struct sockaddr *)&sun);
	return 0;
}

/*
 * A TCP connect to a port of this host that nobody listens on can pick
 * that very port as its own and connect to itself (a simultaneous open):
 * then every line would be "acknowledged" by connectd itself.
 */
static int
sink_self_connected(int fd)
{
	struct sockaddr_storage	 a, b;
	socklen_t		 al = sizeof(a), bl = sizeof(b);

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	if (getsockname(fd, (struct sockaddr *)&a, &al) == -1 ||
	    getpeername(fd, (struct sockaddr *)&b, &bl) == -1)
		return 0;
	return al == bl && memcmp(&a, &b, al) == 0;
}

/*
 * Resolves the host (getaddrinfo(3) may wait for DNS: this is the
 * writer thread, never the loop) and connects to each address in turn.
 * A TCP connect waits at most SINK_CONNECT_TIMEOUT, and stops on abort.
 */
static int
sink_connect_inet(struct sink *s, int type)
{
	struct addrinfo		 hints, *res, *ai;
	struct sockaddr_storage	 ss;
	char			 addr[ADDR_STRLEN], why[160];
	socklen_t		 len;
	double			 deadline;
	short			 rev;
	int			 fd = -1, rv, error, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = type;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rv = getaddrinfo(s->s_host, s->s_port, &hints, &res)) != 0) {
		sink_failed(s, "cannot resolve %s: %s", s->s_host,
		    rv == EAI_SYSTEM ? strerror(errno) : gai_strerror(rv));
		return -1;
	}
	snprintf(why, sizeof(why), "no address for %s", s->s_host);
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen < sizeof(ss) ?
		    ai->ai_addrlen : sizeof(ss));
		if (addr_ntop(&ss, addr, sizeof(addr), NULL) == -1)
			snprintf(addr, sizeof(addr), "?");
		if ((fd = socket(ai->ai_family, ai->ai_socktype |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol)) == -1) {
			snprintf(why, sizeof(why), "socket: %s",
			    strerror(errno));
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		error = errno;
		if (error == EINPROGRESS) {
			deadline = sink_mono() + SINK_CONNECT_TIMEOUT;
			do {
				if (sink_poll(s, fd, POLLOUT, &rev) == -1) {
					close(fd);
					freeaddrinfo(res);
					return -1;
				}
			} while (rev == 0 && sink_mono() < deadline);
			len = sizeof(error);
			if (rev == 0)
				error = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error,
			    &len) == -1)
				error = errno;
			if (error == 0)
				break;
		}
		snprintf(why, sizeof(why), "connect to %s: %s", addr,
		    strerror(error));
		close(fd);
		fd = -1;
	}
	if (fd == -1) {
		freeaddrinfo(res);
		sink_failed(s, "%s", why);
		return -1;
	}
	if (type == SOCK_STREAM && sink_self_connected(fd)) {
		close(fd);
		freeaddrinfo(res);
		sink_failed(s, "connect to %s: %s", addr, strerror(ECONNREFUSED));
		return -1;
	}
	/* a receiver whose host vanished is noticed on an idle connection */
	if (type == SOCK_STREAM)
		(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one,
		    sizeof(one));
	s->s_fd = fd;
	sink_connected(s, ai->ai_addr);
	freeaddrinfo(res);
	return 0;
}

static int
sink_connect(struct sink *s)
{
	if (s->s_kind == ALK_SYSLOG && s->s_host == NULL)
		return sink_connect_unix(s);
	return sink_connect_inet(s, s->s_kind == ALK_TCP ? SOCK_STREAM :
	    SOCK_DGRAM);
}

/* ---------------------------------------------------------------- TCP */

/* Room in the ring of lines in flight for n more; -1 if out of memory. */
static int
sink_fly_reserve(struct sink *s, size_t n)
{
	struct sink_line	*f;
	size_t			 i, cap;

	if (s->s_flylen + n <= s->s_flycap)
		return 0;
	for (cap = s->s_flycap ? s->s_flycap : SINK_QUEUE_INIT;
	    cap < s->s_flylen + n; cap *= 2)
		;
	if ((f = calloc(cap, sizeof(*f))) == NULL)
		return -1;
	for (i = 0; i < s->s_flylen; i++)
		f[i] = s->s_fly[(s->s_flyhead + i) % s->s_flycap];
	free(s->s_fly);
	s->s_fly = f;
	s->s_flycap = cap;
	s->s_flyhead = 0;
	return 0;
}

static void
sink_fly_push(struct sink *s, char *data, size_t len)
{
	struct sink_line	*f;

	s->s_sent += len;
	f = &s->s_fly[(s->s_flyhead + s->s_flylen) % s->s_flycap];
	f->sl_data = data;
	f->sl_len = len;
	f->sl_end = s->s_sent;
	s->s_flylen++;
}

/*
 * How much of what was written the receiver's TCP has acknowledged:
 * tcpi_bytes_acked (RFC 4898 tcpEStatsAppHCThruOctetsAcked), which
 * counts the SYN, and still answers after the connection is reset.  A
 * kernel without it (before Linux 4.1) is taken at its word: all.
 */
static uint64_t
sink_acked(struct sink *s)
{
	struct tcp_info	 ti;
	socklen_t	 len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(s->s_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_acked) +
	    sizeof(ti.tcpi_bytes_acked))
		return s->s_sent;
	if (ti.tcpi_bytes_acked == 0)
		return 0;
	return ti.tcpi_bytes_acked - 1 > s->s_sent ? s->s_sent :
	    ti.tcpi_bytes_acked - 1;
}

/* Lines the receiver acknowledged are written: count and free them. */
static void
sink_fly_release(struct sink *s)
{
	struct sink_line	*f;
	uint64_t		 acked, n = 0;
	size_t			 bytes = 0;

	s->s_polled = sink_mono();
	if (s->s_flylen == 0)
		return;
	acked = sink_acked(s);
	while (s->s_flylen > 0) {
		f = &s->s_fly[s->s_flyhead];
		if (f->sl_end > acked)
			break;
		bytes += f->sl_len;
		free(f->sl_data);
		s->s_flyhead = (s->s_flyhead + 1) % s->s_flycap;
		s->s_flylen--;
		n++;
	}
	if (n == 0)
		return;
	/* a receiver that takes lines is healthy: no more backoff */
	s->s_backoff = 0;
	pthread_mutex_lock(&s->s_mtx);
	s->s_written += n;
	s->s_bytes -= bytes;
	s->s_busy -= (size_t)n;
	if (s->s_qlen == 0 && s->s_busy == 0)
		pthread_cond_broadcast(&s->s_idle);
	pthread_mutex_unlock(&s->s_mtx);
}

/*
 * Closes the connection.  Lines still unacknowledged are sent again on
 * the next one, or given up: a reset discards them from the socket,
 * where close() would let the kernel deliver them after all, and the
 * receiver would get them twice.
 */
static void
sink_tcp_close(struct sink *s)
{
	struct linger	 lg = { 1, 0 };

	if (s->s_flylen > 0)
		(void)setsockopt(s->s_fd, SOL_SOCKET, SO_LINGER, &lg,
		    sizeof(lg));
	close(s->s_fd);
	s->s_fd = -1;
}

/*
 * The connection broke or ended: what the receiver acknowledged is
 * written; the rest in flight, then lines[0..n) (the batch not written,
 * the first of it perhaps half sent), go back to the front of the
 * queue for the next connection, to be sent whole.
 */
static void
sink_tcp_broken(struct sink *s, char **lines, size_t *lens, int n,
    const char *why)
{
	struct sink_line	*f;
	int			 i;

	sink_fly_release(s);
	sink_tcp_close(s);
	pthread_mutex_lock(&s->s_mtx);
	for (i = n - 1; i >= 0; i--)
		sink_unshift_locked(s, lines[i], lens[i]);
	while (s->s_flylen > 0) {
		f = &s->s_fly[(s->s_flyhead + s->s_flylen - 1) % s->s_flycap];
		sink_unshift_locked(s, f->sl_data, f->sl_len);
		s->s_flylen--;
	}
	s->s_busy = 0;
	pthread_mutex_unlock(&s->s_mtx);
	/*
	 * A receiver that took lines and went (a restart) is tried again at
	 * once; one that accepts and fails at once waits its backoff.
	 */
	if (s->s_backoff == 0) {
		s->s_retry = 0;
		s->s_backoff = SINK_BACKOFF_MIN;
	} else {
		s->s_retry = sink_mono() + s->s_backoff;
		s->s_backoff *= 2;
		if (s->s_backoff > SINK_BACKOFF_MAX)
			s->s_backoff = SINK_BACKOFF_MAX;
	}
	sink_note_failure(s, why);
}

/*
 * Reads what the receiver sent: nothing is expected but its end.  0 if
 * the connection is fine, -1 if it ended (EOF) or broke (why says).
 */
static int
sink_tcp_check(struct sink *s, char *why, size_t whylen)
{
	char	 buf[512];
	ssize_t	 r;
	int	 i;

	for (i = 0; i < 64; i++) {
		if ((r = recv(s->s_fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			continue;	/* not ours to read: ignored */
		if (r == 0) {
			snprintf(why, whylen, "%s closed the connection",
			    s->s_peer);
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		snprintf(why, whylen, "%s: %s", s->s_peer, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The receiver is closing, or connectd is: say so (FIN) and give the
 * receiver SINK_CLOSE_WAIT to acknowledge the lines in flight, as one
 * that reads until EOF does, so that what it read is counted written
 * and not sent twice.
 */
static void
sink_tcp_finish(struct sink *s)
{
	double	 deadline = sink_mono() + SINK_CLOSE_WAIT;
	short	 rev;

	(void)shutdown(s->s_fd, SHUT_WR);
	sink_fly_release(s);
	while (s->s_flylen > 0 && sink_mono() < deadline) {
		if (sink_poll(s, s->s_fd, POLLRDHUP, &rev) == -1)
			break;
		sink_fly_release(s);
		/* POLLHUP only says both ways are shut, as they are once the
		   receiver half-closed too: its acks may still come */
		if (rev & POLLERR)
			break;
		if (rev & (POLLRDHUP | POLLHUP))
			(void)usleep(10000);
	}
	sink_fly_release(s);
}

/*
 * Writes lines[0..n) on the connection, non-blocking, waiting for room
 * in slices so that abort is heard.  Written lines are in flight until
 * acknowledged.  A line begun is finished even if the receiver has said
 * it is closing (it may still read: a half-close), so that a receiver
 * that reads until EOF never sees half a line; after it, the rest waits
 * for the next connection.  A broken connection puts the line in
 * progress and those after it back (sink_tcp_broken()).
 */
static void
sink_tcp_send(struct sink *s, char **lines, size_t *lens, int n)
{
	struct iovec	 iov[SINK_BATCH];
	char		 why[160];
	ssize_t		 w;
	size_t		 off = 0;	/* into lines[i] */
	short		 rev;
	int		 i = 0, j, cnt, ending = 0;

	if (sink_fly_reserve(s, (size_t)n) == -1) {
		snprintf(why, sizeof(why), "%s", strerror(ENOMEM));
		goto broken;
	}
	while (i < n) {
		for (j = i, cnt = 0; j < n; j++, cnt++) {
			iov[cnt].iov_base = lines[j] + (j == i ? off : 0);
			iov[cnt].iov_len = lens[j] - (j == i ? off : 0);
		}
		if ((w = sink_sendv(s->s_fd, iov, cnt)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				snprintf(why, sizeof(why), "%s: %s",
				    s->s_peer, strerror(errno));
				goto broken;
			}
			if (sink_poll(s, s->s_fd, ending ? POLLOUT :
			    POLLOUT | POLLIN, &rev) == -1)
				goto abort;
			if (!ending && (rev & (POLLIN | POLLERR | POLLHUP)) &&
			    sink_tcp_check(s, why, sizeof(why)) == -1) {
				if (off == 0)
					goto ended;
				ending = 1;
			}
			continue;
		}
		while (i < n && (size_t)w >= lens[i] - off) {
			w -= (ssize_t)(lens[i] - off);
			off = 0;
			sink_fly_push(s, lines[i], lens[i]);
			i++;
			if (ending)
				goto ended;
		}
		off += (size_t)w;
	}
	if (sink_tcp_check(s, why, sizeof(why)) == -1)
		goto ended;
	sink_fly_release(s);
	return;
 ended:
	sink_tcp_finish(s);
 broken:
	/* lines[i] may be half sent: it is sent again whole */
	sink_tcp_broken(s, lines + i, lens + i, n - i, why);
	return;
 abort:
	pthread_mutex_lock(&s->s_mtx);
	for (j = n - 1; j >= i; j--)
		sink_unshift_locked(s, lines[j], lens[j]);
	s->s_busy -= (size_t)(n - i);
	pthread_mutex_unlock(&s->s_mtx);
}

/* ---------------------------------------------------------- datagrams */

/*
 * RFC 5424 6: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG,
 * with no structured data ("-") and the line, without its newline, as
 * MSG.  syslog(3) is not used: it writes RFC 3164, and may block.
 */
static size_t
sink_syslog_header(struct sink *s, char *buf, size_t len)
{
	char	 ts[TIMEFMT_RFC3339_LEN];
	int	 n;

	if (timefmt_rfc3339(ts, sizeof(ts), timefmt_now()) == 0)
		snprintf(ts, sizeof(ts), "-");
	n = snprintf(buf, len, "<%d>1 %s %s %s %s %s - ", s->s_pri, ts,
	    s->s_hostname, SINK_SYSLOG_APP, s->s_procid, SINK_SYSLOG_MSGID);
	return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}

/*
 * Sends one line as one datagram.  0: sent; 1: lost to an error that
 * concerns it alone (counted); -1: the socket is gone, the line not sent
 * (errno says why); -2: abort.
 */
static int
sink_dgram_send(struct sink *s, char *line, size_t len)
{
	struct iovec	 iov[2];
	char		 hdr[512];
	short		 rev;
	int		 n = 0, refused = 0, error;

	if (s->s_kind == ALK_SYSLOG) {
		iov[n].iov_base = hdr;
		iov[n].iov_len = sink_syslog_header(s, hdr, sizeof(hdr));
		n++;
		if (len > 0 && line[len - 1] == '\n')
			len--;
	}
	iov[n].iov_base = line;
	iov[n].iov_len = len;
	n++;
	for (;;) {
		if (sink_sendv(s->s_fd, iov, n) >= 0)
			return 0;
		switch (errno) {
		case EINTR:
			continue;
		case EAGAIN:
		case ENOBUFS:
			/* a syslog daemon that does not keep up: wait */
			if (sink_poll(s, s->s_fd, POLLOUT, &rev) == -1)
				return -2;
			continue;
		case ECONNREFUSED:
			/*
			 * UDP: an earlier datagram was refused (ICMP), this
			 * one was not sent: once more.  A unix socket: the
			 * daemon went; its successor is connected to anew.
			 */
			if (s->s_host == NULL)
				return -1;
			if (!refused++)
				continue;
			break;
		case ENOTCONN:
		case ECONNRESET:
		case EDESTADDRREQ:
			return -1;
		default:
			break;
		}
		error = errno;
		pthread_mutex_lock(&s->s_mtx);
		s->s_errors++;
		s->s_errno = error;
		pthread_mutex_unlock(&s->s_mtx);
		return 1;
	}
}

/*
 * Sends lines[0..n) as datagrams, counting each as it goes (a daemon
 * that reads slowly holds a batch up: SIGUSR1 still tells the truth).
 * On a socket gone, the rest goes back to the queue and the output
 * connects anew.
 */
static void
sink_dgram_batch(struct sink *s, char **lines, size_t *lens, int n)
{
	char	 why[160];
	int	 i, rv = 0, error = 0;

	for (i = 0; i < n; i++) {
		if ((rv = sink_dgram_send(s, lines[i], lens[i])) < 0) {
			error = errno;
			break;
		}
		pthread_mutex_lock(&s->s_mtx);
		if (rv == 0)
			s->s_written++;
		s->s_bytes -= lens[i];
		s->s_busy--;
		pthread_mutex_unlock(&s->s_mtx);
		free(lines[i]);
	}
	if (rv == -1) {
		close(s->s_fd);
		s->s_fd = -1;
		s->s_retry = 0;
	}
	pthread_mutex_lock(&s->s_mtx);
	s->s_busy = 0;
	for (n--; n >= i; n--)
		sink_unshift_locked(s, lines[n], lens[n]);
	pthread_mutex_unlock(&s->s_mtx);
	if (rv == -1) {
		snprintf(why, sizeof(why), "send to %s: %s", s->s_peer,
		    strerror(error));
		sink_note_failure(s, why);
	}
}

/* --------------------------------------------------------- the thread */

/* Waits for work, or until the monotonic time until (0: no timer). */
static void
sink_net_wait_locked(struct sink *s, double until)
{
	struct timespec	 deadline;
	double		 secs;

	s->s_sleeping = 1;
	if (until <= 0 && s->s_dropped == s->s_rep_dropped &&
	    s->s_errors == s->s_rep_errors &&
	    s->s_connfail == s->s_rep_connfail)
		pthread_cond_wait(&s->s_wake, &s->s_mtx);
	else {
		/* unreported counts: wake in time to report them */
		secs = until > 0 ? until - sink_mono() : SINK_REPORT_INTERVAL;
		if (secs > SINK_REPORT_INTERVAL)
			secs = SINK_REPORT_INTERVAL;
		if (secs > 0) {
			sink_deadline(&deadline, secs);
			pthread_cond_timedwait(&s->s_wake, &s->s_mtx,
			    &deadline);
		}
	}
	s->s_sleeping = 0;
}

/*
 * A network output's writer: connects (with backoff), sends the queue
 * in batches, and for TCP reads acknowledgements and notices a receiver
 * that goes.  Meanwhile lines wait in the bounded queue; once it is
 * full, sink_push() drops and counts them.
 */
void *
sink_net_main(void *arg)
{
	struct sink	*s = arg;
	char		*lines[SINK_BATCH], msg[512], why[160];
	size_t		 lens[SINK_BATCH];
	double		 until, poll_at;
	int		 n, stopping = 0;

	pthread_mutex_lock(&s->s_mtx);
	for (;;) {
		if (s->s_abort)
			break;
		if (s->s_reopen) {
			/* SIGUSR1: a writer waiting to reconnect tries now */
			s->s_reopen = 0;
			s->s_retry = 0;
		}
		if (s->s_stop && stopping == 0) {
			/* one last attempt for what is queued ... */
			stopping = 1;
			s->s_retry = 0;
		} else if (s->s_stop && s->s_fd == -1 && stopping == 2)
			break;	/* ... failed: what is left is dropped */
		if (s->s_stop && s->s_qlen == 0)
			break;
		if (sink_report_locked(s, 0, msg, sizeof(msg))) {
			pthread_mutex_unlock(&s->s_mtx);
			log_warnx("%s", msg);
			pthread_mutex_lock(&s->s_mtx);
		}
		if (s->s_fd == -1 && sink_mono() >= s->s_retry) {
			if (stopping)
				stopping = 2;
			pthread_mutex_unlock(&s->s_mtx);
			(void)sink_connect(s);
			pthread_mutex_lock(&s->s_mtx);
			continue;
		}
		if (s->s_fd != -1 && s->s_qlen > 0) {
			for (n = 0; n < SINK_BATCH && s->s_qlen > 0; n++) {
				lines[n] = s->s_q[s->s_qhead].iov_base;
				lens[n] = s->s_q[s->s_qhead].iov_len;
				s->s_qhead = (s->s_qhead + 1) % s->s_qcap;
				s->s_qlen--;
			}
			s->s_busy += (size_t)n;
			pthread_mutex_unlock(&s->s_mtx);
			if (s->s_kind == ALK_TCP)
				sink_tcp_send(s, lines, lens, n);
			else
				sink_dgram_batch(s, lines, lens, n);
			pthread_mutex_lock(&s->s_mtx);
			if (s->s_qlen == 0 && s->s_busy == 0)
				pthread_cond_broadcast(&s->s_idle);
			continue;
		}
		/* nothing to send now: wait for lines, a retry, or acks */
		poll_at = s->s_polled + (s->s_flylen > 0 ? SINK_ACK_POLL :
		    SINK_IDLE_POLL);
		until = s->s_fd == -1 ? s->s_retry :
		    s->s_kind == ALK_TCP ? poll_at : 0;
		if (until <= 0 || until > sink_mono())
			sink_net_wait_locked(s, until);
		if (s->s_kind != ALK_TCP || s->s_fd == -1 ||
		    sink_mono() < poll_at)
			continue;
		pthread_mutex_unlock(&s->s_mtx);
		if (sink_tcp_check(s, why, sizeof(why)) == -1) {
			sink_tcp_finish(s);
			sink_tcp_broken(s, NULL, NULL, 0, why);
		} else
			sink_fly_release(s);
		pthread_mutex_lock(&s->s_mtx);
	}
	pthread_mutex_unlock(&s->s_mtx);

	if (s->s_kind == ALK_TCP && s->s_fd != -1) {
		sink_tcp_finish(s);
		sink_tcp_close(s);
	}
	if (s->s_fd != -1)
		close(s->s_fd);
	s->s_fd = -1;

	pthread_mutex_lock(&s->s_mtx);
	/* what no receiver confirmed, and what is left, is given up */
	while (s->s_flylen > 0) {
		free(s->s_fly[s->s_flyhead].sl_data);
		s->s_bytes -= s->s_fly[s->s_flyhead].sl_len;
		s->s_flyhead = (s->s_flyhead + 1) % s->s_flycap;
		s->s_flylen--;
		s->s_dropped++;
	}
	while (s->s_qlen > 0) {
		free(s->s_q[s->s_qhead].iov_base);
		s->s_bytes -= s->s_q[s->s_qhead].iov_len;
		s->s_qhead = (s->s_qhead + 1) % s->s_qcap;
		s->s_qlen--;
		s->s_dropped++;
	}
	s->s_busy = 0;
	s->s_up = 0;
	if (sink_report_locked(s, 1, msg, sizeof(msg))) {
		pthread_mutex_unlock(&s->s_mtx);
		log_warnx("%s", msg);
		pthread_mutex_lock(&s->s_mtx);
	}
	s->s_exited = 1;
	pthread_cond_broadcast(&s->s_idle);
	pthread_mutex_unlock(&s->s_mtx);
	return NULL;
}

