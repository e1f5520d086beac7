/* conn.c: one client connection from accept to log line: states, timers, the one close path */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectd.h"
#include "helper.h"
#include "net.h"

/*
 * The route of one connection (HACKING.md tells it in prose):
 *
 *   conn_accept ─ HEAD ─ conn_head_cb ─┬─ conn_advance ─ DECIDE ─┐
 *        │                             │        ▲   (helper,      │
 *        │ over a limit                │        │    addresses)   │
 *        ▼                             │        └── conn_wake ────┤
 *      REPLY ◀── conn_fail ◀───────────┤            conn_resolved │
 *        │    (bad head, 403, DNS,     │                          │
 *        │     connect, timeouts)      └─ RESOLVE ─ CONNECT ─ RELAY
 *        ▼                                                        │
 *   conn_close ──────────────────────────────────────────────────┘
 *        │ the record goes to accesslog_submit(): the line is written
 *        ▼ there, at once or when the helpers have answered
 *     CLOSED, freed by conn_reap() at the end of the loop turn
 *
 * Between the head and connect() a connection waits for two things: the
 * access decision and the addresses.  conn_advance() is the only place
 * it moves on from either; callbacks only record what arrived and call
 * it.  conn_go() is the only place the state changes, and it runs the
 * new state's entry actions.
 */

#define HEAD_READ_CHUNK		4096

/* The request head while it arrives: only a connection in HEAD has one. */
struct conn_head {
	struct buf		 ch_buf;
	struct http_head	 ch_parse;	/* where the parser stopped */
};
#define LINGER_TIMEOUT		2.0	/* discard client input after an error */
#define TIMER_SLACK		0.0005	/* a timer a little early still counts */

static const char *const conn_state_names[] = {
	[CONN_HEAD] = "head",
	[CONN_DECIDE] = "decide",
	[CONN_RESOLVE] = "resolve",
	[CONN_CONNECT] = "connect",
	[CONN_RELAY] = "relay",
	[CONN_FORWARD] = "forward",
	[CONN_REPLY] = "reply",
	[CONN_CLOSED] = "closed",
};

static void	conn_go(struct conn *, enum conn_state);
static void	conn_uncount(struct conn *);
static void	conn_head_free(struct conn *);
static void	conn_cred_free(struct conn *);
static int	conn_idle(const struct conn *);
static int	conn_empty(const struct conn *, enum close_reason);
static int	conn_head_parse(struct conn *);
static int	conn_pooled(struct conn *);
static void	conn_advance(struct conn *);
static void	conn_hello_decide(struct conn *);
static void	conn_head_cb(EV_P_ ev_io *, int);
static void	conn_timer_cb(EV_P_ ev_timer *, int);
static void	conn_resolved(void *, int, const struct sockaddr_storage *,
		    size_t, const char *);
static void	conn_connect_next(struct conn *);
static void	conn_connect_failed(struct conn *, int);
static void	conn_connect_cb(EV_P_ ev_io *, int);
static void	conn_reply_cb(EV_P_ ev_io *, int);
static void	conn_linger_cb(EV_P_ ev_io *, int);
static void	conn_interim_arm(struct conn *);
static void	conn_interim(struct conn *);

/* ------------------------------------------------------------- helpers */

/* A C string of s[0..len), cut at max; NULL for s NULL or out of memory. */
static char *
conn_strndup(const char *s, size_t len, size_t max)
{
	char	*p;

	if (s == NULL)
		return NULL;
	if (len > max)
		len = max;
	if ((p = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	/* the log record holds C strings; a NUL in the input ends them */
	return p;
}

/*
 * "host:port", "[v6]:port" for an IPv6 host: the authority a request to
 * forward names, as a CONNECT would.  NULL if out of memory.  By hand,
 * since it is made for every request.
 */
static char *
conn_authority(const char *host, uint16_t port)
{
	size_t	 hl = strlen(host), n = 0;
	int	 v6 = strchr(host, ':') != NULL;
	char	*a;

	if ((a = malloc(hl + UTIL_U64_LEN + 4)) == NULL)
		return NULL;
	if (v6)
		a[n++] = '[';
	memcpy(a + n, host, hl);
	n += hl;
	if (v6)
		a[n++] = ']';
	a[n++] = ':';
	n += fmt_u64(a + n, port);
	a[n] = '\0';
	return a;
}

/* The request target as the log may hold it (http_target_redact()). */
static char *
conn_target(const char *t, size_t len)
{
	char	*p;

	if (t == NULL || (p = malloc(len + 4)) == NULL)
		return NULL;
	http_target_redact(t, len, p, len + 4);
	return p;
}

/*
 * The second word of a request line the parser gave up on inside it (a
 * control byte, say), so that the log shows what the client asked for:
 * only a whole word, redacted, then cut to AUTHORITY_MAX_LEN.
 */
static char *
conn_raw_target(struct conn *c)
{
	const char	*head = c->c_head->ch_buf.b_data, *s, *end, *sp;
	size_t		 len = c->c_head->ch_buf.b_len;
	char		*t;

	end = head + len;
	if ((sp = memchr(head, ' ', len)) == NULL)
		return NULL;
	for (s = ++sp; s < end && *s != ' ' && *s != '\r' && *s != '\n';
	    s++)
		;
	if (s == sp || s == end)
		return NULL;
	if ((t = conn_target(sp, (size_t)(s - sp))) != NULL &&
	    strlen(t) > AUTHORITY_MAX_LEN)
		t[AUTHORITY_MAX_LEN] = '\0';
	return t;
}

static void
conn_set_detail(struct conn *c, const char *detail)
{
	free(c->c_rec->lr_detail);
	c->c_rec->lr_detail = detail != NULL ? strdup(detail) : NULL;
}

/* ---------------------------------------------------------------- timer */

/* The deadline of the current state; the timer is re-armed lazily. */
static ev_tstamp
conn_state_deadline(struct conn *c)
{
	struct conf	*cf = c->c_conf;
	ev_tstamp	 d, acl, pk;

	switch (c->c_state) {
	case CONN_HEAD:
		/* between requests: the wait for the next one's first byte */
		if (conn_idle(c))
			return c->c_state_since +
			    cf->c_client_idle_pconn_timeout;
		return c->c_state_since + cf->c_request_header_timeout;
	case CONN_DECIDE:
		d = c->c_wait_since + cf->c_connect_timeout;
		acl = helper_acl_deadline(c);
		return acl != 0. && acl < d ? acl : d;
	case CONN_RESOLVE:
		return c->c_wait_since + cf->c_connect_timeout;
	case CONN_CONNECT:
		return c->c_state_since + cf->c_connect_timeout;
	case CONN_FORWARD:
		return c->c_activity + cf->c_read_timeout;
	case CONN_RELAY:
		d = c->c_activity + cf->c_read_timeout;
		if ((c->c_flags & (CONN_CLIENT_EOF | CONN_SERVER_EOF)) &&
		    c->c_half_since + cf->c_half_closed_timeout < d)
			d = c->c_half_since + cf->c_half_closed_timeout;
		/* tls_peek_timeout: a hello reader gives up, the tunnel goes on */
		pk = peek_deadline(c);
		if (pk != 0. && pk < d)
			d = pk;
		/* a held tunnel's helper, its timeout= */
		if ((c->c_flags & CONN_HELLO_WAIT) &&
		    (acl = helper_acl_deadline(c)) != 0. && acl < d)
			d = acl;
		return d;
	case CONN_REPLY:
		return c->c_state_since + LINGER_TIMEOUT;
	case CONN_CLOSED:
		break;
	}
	return c->c_state_since;
}

/* client_lifetime bounds every state but the short linger of a reply */
static ev_tstamp
conn_deadline(struct conn *c)
{
	ev_tstamp	 d, life;

	d = conn_state_deadline(c);
	life = c->c_born + c->c_conf->c_client_lifetime;
	return c->c_state != CONN_REPLY && life < d ? life : d;
}

void
conn_timer_arm(struct conn *c)
{
	struct ev_loop	*loop = c->c_worker->w_loop;
	ev_tstamp	 when, left;

	/* the same timer wakes for the next interim record */
	when = conn_deadline(c);
	if (c->c_interim_due != 0. && c->c_interim_due < when)
		when = c->c_interim_due;
	left = when - ev_now(loop);
	if (left < 0.001)
		left = 0.001;
	ev_timer_stop(loop, &c->c_timer);
	ev_timer_set(&c->c_timer, left, 0.);
	ev_timer_start(loop, &c->c_timer);
}

static void
conn_timer_cb(EV_P_ ev_timer *t, int revents)
{
	struct conn	*c = t->data;
	ev_tstamp	 now = ev_now(EV_A) + TIMER_SLACK, acl;

	if (c->c_interim_due != 0. && c->c_interim_due <= now)
		conn_interim(c);
	if (conn_deadline(c) > now) {
		conn_timer_arm(c);
		return;
	}
	if (c->c_state != CONN_REPLY &&
	    now >= c->c_born + c->c_conf->c_client_lifetime) {
		conn_set_detail(c, "client_lifetime reached");
		conn_close(c, CLOSE_LIFETIME);
		return;
	}
	switch (c->c_state) {
	case CONN_HEAD:
		if (conn_idle(c)) {
			conn_close(c, CLOSE_IDLE_TIMEOUT);
			break;
		}
		conn_fail(c, 408, CLOSE_HEADER_TIMEOUT,
		    "no complete request head in time");
		break;
	case CONN_DECIDE:
		if (now < c->c_wait_since + c->c_conf->c_connect_timeout) {
			/* some helper did not answer in its timeout= */
			helper_acl_expire(c, now, 0);
			conn_advance(c);
			break;
		}
		if (c->c_query == NULL) {
			/* connect_timeout bounds the decision too */
			helper_acl_expire(c, now, 1);
			conn_advance(c);
			break;
		}
		/* FALLTHROUGH */
	case CONN_RESOLVE:
		conn_fail(c, 503, CLOSE_DNS_FAILED,
		    "name resolution timed out");
		break;
	case CONN_CONNECT:
		conn_connect_failed(c, ETIMEDOUT);
		break;
	case CONN_RELAY:
		if ((c->c_flags & CONN_HELLO_WAIT) &&
		    (acl = helper_acl_deadline(c)) != 0. && acl <= now) {
			/* some helper did not answer in its timeout= */
			helper_acl_expire(c, now, 0);
			conn_hello_decide(c);
			if (c->c_state == CONN_RELAY)
				conn_timer_arm(c);
			break;
		}
		if (peek_expire(c, now)) {
			/* a held hello's end may have closed it (conn_hello) */
			if (c->c_state == CONN_RELAY)
				conn_timer_arm(c);
			break;
		}
		conn_close(c, CLOSE_IDLE_TIMEOUT);
		break;
	case CONN_FORWARD:
		if (!forward_replied(c))
			conn_fail(c, 504, CLOSE_IDLE_TIMEOUT,
			    "no response within read_timeout");
		else
			conn_close(c, CLOSE_IDLE_TIMEOUT);
		break;
	case CONN_REPLY:
		conn_close(c, c->c_reason);
		break;
	case CONN_CLOSED:
		break;
	}
}

/* ---------------------------------------------------------- transitions */

/*
 * A stopped watcher of the client's socket to cb.  Already on it for the
 * same events, only the callback changes: ev_io_set() would make libev's
 * next fd_reify call epoll_ctl(EPOLL_CTL_ADD) on an fd still in the
 * epoll set, which fails with EEXIST (libev's ev_epoll.c then fixes it
 * up): a wasted system call per phase.  Restarted in the same loop turn,
 * such a watcher costs none.  Only for c_cfd, which is the same socket
 * for the connection's life: a server fd may be closed and its number
 * reused in one loop turn, and libev must then be told (ev_io_set()).
 */
static void
conn_io_set(ev_io *io, conn_io_cb *cb, int fd, int events)
{
	if (io->fd == fd && (io->events & (EV_READ | EV_WRITE)) == events) {
		ev_set_cb(io, cb);
		return;
	}
	ev_io_init(io, cb, fd, events);
}

/*
 * Between the head and the relay the client may send more (a ClientHello
 * pipelined before the 200): it waits in the socket, not read, and the
 * watcher stops at its first wakeup.  It is not stopped before: most
 * clients send nothing then, and a watcher that stays on its fd lets the
 * relay start without another epoll_ctl() (conn_io_set()).
 */
static void
conn_early_cb(EV_P_ ev_io *io, int revents)
{
	ev_io_stop(EV_A, io);
}

/*
 * Point the four watchers at the callbacks of the phase that begins
 * (relay.c and forward.c, as they start): every one stopped, none
 * started, the idle clock reset.
 */
void
conn_io_init(struct conn *c, conn_io_cb *cread, conn_io_cb *cwrite,
    conn_io_cb *sread, conn_io_cb *swrite)
{
	struct ev_loop	*loop = c->c_worker->w_loop;

	ev_io_stop(loop, &c->c_cread);
	ev_io_stop(loop, &c->c_cwrite);
	ev_io_stop(loop, &c->c_sread);
	ev_io_stop(loop, &c->c_swrite);
	conn_io_set(&c->c_cread, cread, c->c_cfd, EV_READ);
	conn_io_set(&c->c_cwrite, cwrite, c->c_cfd, EV_WRITE);
	/* the server's fd may be new (a pooled connection, another address) */
	ev_io_init(&c->c_sread, sread, c->c_sfd, EV_READ);
	ev_io_init(&c->c_swrite, swrite, c->c_sfd, EV_WRITE);
	c->c_cread.data = c->c_cwrite.data = c;
	c->c_sread.data = c->c_swrite.data = c;
	c->c_activity = ev_now(loop);
}

/*
 * The only place the state changes.  Each state's entry action sets up
 * what that state waits on; the timer follows the new deadline.
 */
static void
conn_go(struct conn *c, enum conn_state state)
{
	struct ev_loop	*loop = c->c_worker->w_loop;

	if (c->c_state != state)
		log_debug("conn %llu: %s -> %s", (unsigned long long)c->c_id,
		    conn_state_names[c->c_state], conn_state_names[state]);
	c->c_state = state;
	c->c_state_since = ev_now(loop);
	conn_interim_arm(c);
	switch (state) {
	case CONN_HEAD:
		ev_io_stop(loop, &c->c_cread);
		conn_io_set(&c->c_cread, conn_head_cb, c->c_cfd, EV_READ);
		c->c_cread.data = c;
		ev_io_start(loop, &c->c_cread);
		break;
	case CONN_DECIDE:
	case CONN_RESOLVE:
		/* the head is in; what follows it waits in the socket */
		ev_set_cb(&c->c_cread, conn_early_cb);
		break;
	case CONN_CONNECT:
		ev_set_cb(&c->c_cread, conn_early_cb);
		ev_io_init(&c->c_swrite, conn_connect_cb, c->c_sfd, EV_WRITE);
		ev_io_start(loop, &c->c_swrite);
		break;
	case CONN_RELAY:
		relay_start(c);
		/* a held hello pipelined after the head may be denied at once */
		if (c->c_state != CONN_RELAY)
			return;
		break;
	case CONN_FORWARD:
		conn_timer_arm(c);
		forward_start(c);
		return;
	case CONN_REPLY:
		ev_io_stop(loop, &c->c_cread);
		ev_io_stop(loop, &c->c_cwrite);
		ev_io_init(&c->c_cwrite, conn_reply_cb, c->c_cfd, EV_WRITE);
		conn_timer_arm(c);
		conn_reply_cb(loop, &c->c_cwrite, EV_WRITE);
		return;
	case CONN_CLOSED:
		return;
	}
	conn_timer_arm(c);
}

/*
 * The one way out.  The reason becomes the log line's close field; the
 * record goes to the access log, which writes it.  A reset on one side
 * is passed on to the other as a reset.  c stays allocated, CLOSED,
 * until conn_reap() at the end of the loop turn, so that a caller up
 * the stack can still look at its state.
 */
void
conn_close(struct conn *c, enum close_reason reason)
{
	struct worker	*w = c->c_worker;
	struct linger	 lg = { 1, 0 };
	int		 idle, empty;

	if (c->c_state == CONN_CLOSED)
		return;
	idle = conn_idle(c);
	empty = !idle && conn_empty(c, reason);
	conn_go(c, CONN_CLOSED);
	ev_timer_stop(w->w_loop, &c->c_timer);
	ev_io_stop(w->w_loop, &c->c_cread);
	ev_io_stop(w->w_loop, &c->c_cwrite);
	ev_io_stop(w->w_loop, &c->c_sread);
	ev_io_stop(w->w_loop, &c->c_swrite);
	resolve_cancel(c->c_query);
	c->c_query = NULL;
	if (reason == CLOSE_CLIENT_RESET && c->c_sfd != -1)
		(void)setsockopt(c->c_sfd, SOL_SOCKET, SO_LINGER, &lg,
		    sizeof(lg));
	if (reason == CLOSE_SERVER_RESET && c->c_cfd != -1)
		(void)setsockopt(c->c_cfd, SOL_SOCKET, SO_LINGER, &lg,
		    sizeof(lg));
	if (c->c_cfd != -1)
		close(c->c_cfd);
	if (c->c_sfd != -1)
		close(c->c_sfd);
	if (c->c_pooled != -1)
		close(c->c_pooled);
	c->c_cfd = c->c_sfd = c->c_pooled = -1;

	/* a hello still being read is logged as cut short */
	peek_end(c);
	/* a hold that still waited for a helper (conn_hello_decide()) */
	if (c->c_flags & CONN_HELLO_WAIT) {
		c->c_flags &= ~(CONN_HOLD | CONN_HELLO_WAIT);
		w->w_metrics.m_holds[HOLD_ABORTED]++;
	}
	if (c->c_rec->lr_end == 0)
		c->c_rec->lr_end = ev_now(w->w_loop);
	c->c_rec->lr_close = reason;
	w->w_stats.st_bytes_up += c->c_rec->lr_bytes_up;
	w->w_stats.st_bytes_down += c->c_rec->lr_bytes_down;
	w->w_stats.st_active--;
	conn_uncount(c);
	/* closed while the rules waited: a helper's failure may show */
	helper_acl_policy(c, c->c_rec);
	helper_acl_free(c);
	conn_cred_free(c);
	/*
	 * No line for a kept-alive connection that closes between requests,
	 * nor for one that never sent a byte (conn_empty()): that one is
	 * only counted.
	 */
	if (idle || empty) {
		if (empty)
			w->w_metrics.m_empty++;
		logrec_free(c->c_rec);
		helper_log_free(c->c_lookups);
	} else
		accesslog_submit(w, c->c_conf, c->c_rec, c->c_lookups);
	c->c_rec = NULL;
	c->c_lookups = NULL;
	forward_free(c);

	TAILQ_REMOVE(&w->w_conns, c, c_entry);
	TAILQ_INSERT_TAIL(&w->w_closed, c, c_entry);
	relay_free_buffers(c);
	conn_head_free(c);
	free(c->c_addrs);
	c->c_addrs = NULL;

	if (w->w_stopping && TAILQ_EMPTY(&w->w_conns))
		ev_break(w->w_loop, EVBREAK_ALL);
}

/*
 * Stop counting c against max_connections and its client's
 * client_ip_max_connections: at close, or once an error reply is out and
 * only the linger is left, so that refusals cannot fill the proxy.
 */
static void
conn_uncount(struct conn *c)
{
	struct worker	*w = c->c_worker;

	if (!(c->c_flags & CONN_COUNTED))
		return;
	c->c_flags &= ~CONN_COUNTED;
	worker_count(w, -1);
	limit_client_del(w, &c->c_rec->lr_client);
	listener_limit(w);
}

static void
conn_head_free(struct conn *c)
{
	if (c->c_head == NULL)
		return;
	buf_free(&c->c_head->ch_buf);
	free(c->c_head);
	c->c_head = NULL;
}

/*
 * Between two requests of a kept-alive connection, before a byte of
 * the next one: closing now is no event worth a log line.
 */
static int
conn_idle(const struct conn *c)
{
	return c->c_state == CONN_HEAD && c->c_nreq > 0 &&
	    (c->c_head == NULL || c->c_head->ch_buf.b_len == 0);
}

/*
 * A connection that closes without having sent a byte gets no line, only
 * a count (connectd_connections_empty_total): Kubernetes tcpSocket probes,
 * load balancers' health checks and port scanners open and close such
 * connections all day, and a line of nulls for each drowns the log.
 * Squid 5.7 does log them, as "NONE_NONE/000 ... error:transaction-end-
 * before-headers" (tried: a connect and close, or an RST, or silence
 * until request_start_timeout); its squid.conf.documented suggests
 * `acl hasRequest has request` on the access_log line to leave them
 * out, and connectd behaves as Squid with that acl.  So the same goes
 * for one that stays silent until request_header_timeout (it still gets
 * its 408), a shutdown or client_lifetime.  A refusal made before the
 * first byte (client_ip_max_connections) is logged: the proxy did
 * something.  One byte of a request head makes a request: logged.
 */
static int
conn_empty(const struct conn *c, enum close_reason reason)
{
	if (c->c_nreq > 0 || c->c_rec->lr_head_in > 0 ||
	    (c->c_head != NULL && c->c_head->ch_buf.b_len > 0))
		return 0;
	switch (reason) {
	case CLOSE_CLIENT_EOF:
	case CLOSE_CLIENT_RESET:
	case CLOSE_HEADER_TIMEOUT:
	case CLOSE_SHUTDOWN:
	case CLOSE_LIFETIME:
		return 1;
	default:
		return 0;
	}
}

/* Free the connections closed during this loop turn. */
void
conn_reap(struct worker *w)
{
	struct conn	*c;

	while ((c = TAILQ_FIRST(&w->w_closed)) != NULL) {
		TAILQ_REMOVE(&w->w_closed, c, c_entry);
		conf_unref(c->c_conf);
		free(c);
	}
}

/*
 * Send an error reply, then close with the given reason once it is out.
 * The client's further input is read and discarded for a moment so that
 * close() does not turn into a reset that destroys the reply.
 */
void
conn_fail(struct conn *c, int status, enum close_reason reason,
    const char *detail)
{
	struct worker		*w = c->c_worker;
	struct logrec		*r = c->c_rec;
	const struct helper_def	*auth;
	char			 buf[512];
	int			 n;

	if (detail != NULL)
		conn_set_detail(c, detail);
	ev_io_stop(w->w_loop, &c->c_sread);
	ev_io_stop(w->w_loop, &c->c_swrite);
	resolve_cancel(c->c_query);
	c->c_query = NULL;
	if (c->c_sfd != -1) {
		close(c->c_sfd);
		c->c_sfd = -1;
	}
	relay_free_buffers(c);
	if (c->c_head != NULL && r->lr_head_in == 0)
		r->lr_head_in = c->c_head->ch_buf.b_len;
	r->lr_status = status;
	c->c_reason = reason;
	w->w_stats.st_refused++;

	auth = status == 407 ? helper_conf_auth(c->c_conf) : NULL;
	if ((n = http_reply_challenge(status, auth != NULL ? auth->hd_realm :
	    NULL, buf, sizeof(buf))) <= 0 ||
	    (c->c_down = malloc(sizeof(*c->c_down) + (size_t)n)) == NULL) {
		conn_close(c, reason);
		return;
	}
	memcpy(c->c_down->rb_data, buf, (size_t)n);
	c->c_down->rb_off = 0;
	c->c_down->rb_len = c->c_down->rb_cap = (size_t)n;
	c->c_down->rb_reply = (size_t)n;
	conn_go(c, CONN_REPLY);
}

static void
conn_reply_cb(EV_P_ ev_io *io, int revents)
{
	struct conn		*c = io->data;
	struct relay_buf	*b = c->c_down;
	size_t			 n;
	int			 err;

	n = net_write(c->c_cfd, b->rb_data + b->rb_off, b->rb_len - b->rb_off,
	    &err);
	b->rb_off += n;
	c->c_rec->lr_reply_out += n;
	/* a forwarded request's reply is the response message */
	if (c->c_rec->lr_scheme != NULL)
		c->c_rec->lr_bytes_down += n;
	if (err != 0) {
		conn_close(c, c->c_reason);
		return;
	}
	if (b->rb_off < b->rb_len) {
		ev_io_start(EV_A, &c->c_cwrite);
		return;
	}
	ev_io_stop(EV_A, &c->c_cwrite);
	free(c->c_down);
	c->c_down = NULL;
	/* the request ends here; lingering for the client's FIN is not timed */
	c->c_rec->lr_end = ev_now(EV_A);
	conn_uncount(c);
	if (shutdown(c->c_cfd, SHUT_WR) == -1) {
		conn_close(c, c->c_reason);
		return;
	}
	ev_io_init(&c->c_cread, conn_linger_cb, c->c_cfd, EV_READ);
	ev_io_start(EV_A, &c->c_cread);
}

static void
conn_linger_cb(EV_P_ ev_io *io, int revents)
{
	struct conn	*c = io->data;

	if (net_drain(c->c_cfd) == -1)
		conn_close(c, c->c_reason);
}

/* -------------------------------------------------------------- interim */

/*
 * access_log_interval: while a tunnel relays, or a forwarded request
 * streams, its record is written every interval as an interim record,
 * on the connection's own timer.  The next one is due an interval after
 * the previous line's time on the record's own clock (start + n
 * intervals), so that a reconnect or a late wakeup does not shift them;
 * one more than an interval late waits a whole interval.
 */
static void
conn_interim_arm(struct conn *c)
{
	double	 iv = c->c_conf->c_access_log_interval;

	c->c_interim_due = 0.;
	if (iv <= 0. || (c->c_state != CONN_RELAY &&
	    c->c_state != CONN_FORWARD))
		return;
	c->c_interim_due = c->c_rec->lr_start + iv * (c->c_rec->lr_seq + 1);
}

/*
 * Write an interim record: a copy of the record as it stands, with the
 * bytes since the last line as its deltas; the tunnel's next line (the
 * final one included) counts from here.  The pod comes from the lookups
 * the final line will use, or, while they are on their way, from a
 * lookup of the copy's own that joins them and waits as a final line
 * would.
 */
static void
conn_interim(struct conn *c)
{
	struct worker		*w = c->c_worker;
	struct logrec		*r = c->c_rec, *copy;
	struct helper_log	*hl = NULL;
	ev_tstamp		 now = ev_now(w->w_loop);

	if (c->c_state != CONN_RELAY && c->c_state != CONN_FORWARD) {
		c->c_interim_due = 0.;
		return;
	}
	if ((copy = logrec_dup(r)) == NULL)
		log_warn("conn %llu: interim record",
		    (unsigned long long)c->c_id);
	else {
		copy->lr_end = now;
		copy->lr_interim = 1;
		r->lr_seq++;
		r->lr_up_logged = r->lr_bytes_up;
		r->lr_down_logged = r->lr_bytes_down;
		if (c->c_lookups != NULL) {
			if (helper_log_settled(c->c_lookups))
				helper_log_fill(c->c_lookups, copy, 0);
			else
				hl = helper_log_start(w, copy);
		}
		accesslog_submit(w, c->c_conf, copy, hl);
	}
	conn_interim_arm(c);
	if (c->c_interim_due <= now)
		c->c_interim_due = now + c->c_conf->c_access_log_interval;
}

/* --------------------------------------------------------------- accept */

void
conn_accept(struct worker *w, int fd, const struct sockaddr_storage *peer,
    const struct sockaddr_storage *local)
{
	struct conn	*c;
	unsigned	 n, max;
	int		 on = 1;
	char		 detail[96];

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->c_rec = logrec_new()) == NULL) {
		log_warn("conn: calloc");
		free(c);
		close(fd);
		return;
	}
	c->c_cfd = fd;
	c->c_sfd = c->c_pooled = -1;
	c->c_worker = w;
	c->c_born = ev_now(w->w_loop);
	c->c_conf = conf_ref(w->w_conf);
	c->c_id = (w->w_next_id += w->w_id_step);
	c->c_rec->lr_id = c->c_id;
	c->c_rec->lr_start = ev_now(w->w_loop);
	c->c_rec->lr_client = *peer;
	c->c_rec->lr_local = *local;
	c->c_activity = ev_now(w->w_loop);
	if ((c->c_head = calloc(1, sizeof(*c->c_head))) == NULL) {
		log_warn("conn: calloc");
		logrec_free(c->c_rec);
		conf_unref(c->c_conf);
		free(c);
		close(fd);
		return;
	}
	buf_init(&c->c_head->ch_buf, c->c_conf->c_request_header_max_size);
	TAILQ_INIT(&c->c_acl_waits);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

	ev_io_init(&c->c_cread, conn_head_cb, fd, EV_READ);
	ev_init(&c->c_cwrite, NULL);
	ev_init(&c->c_sread, NULL);
	ev_init(&c->c_swrite, NULL);
	c->c_cread.data = c->c_cwrite.data = c;
	c->c_sread.data = c->c_swrite.data = c;
	ev_init(&c->c_timer, conn_timer_cb);
	c->c_timer.data = c;

	TAILQ_INSERT_TAIL(&w->w_conns, c, c_entry);
	w->w_stats.st_accepted++;
	w->w_stats.st_active++;
	worker_count(w, 1);
	c->c_flags |= CONN_COUNTED;
	listener_limit(w);
	n = limit_client_add(w, peer);

	max = c->c_conf->c_client_ip_max_connections;
	if (max != 0 && n > max) {
		snprintf(detail, sizeof(detail), "client_ip_max_connections %u "
		    "reached", max);
		conn_fail(c, 503, CLOSE_LIMIT, detail);
		return;
	}
	conn_go(c, CONN_HEAD);
}

/* ----------------------------------------------------------------- head */

/* The decoded credential, wiped: it was only for the auth helper. */
static void
conn_cred_free(struct conn *c)
{
	if (c->c_cred == NULL)
		return;
	explicit_bzero(c->c_cred, strlen(c->c_cred));
	free(c->c_cred);
	c->c_cred = NULL;
}

/*
 * The user name a Proxy-Authorization: Basic carries, for %un and "user"
 * (issue 15): several jobs can share one pod's address.  Only the name
 * goes on the record.  With auth_param basic, the whole credential is
 * kept on the connection (c_cred) for proxy_auth acls to ask the helper,
 * and wiped when the request is done.
 */
static void
conn_user(struct conn *c, const struct http_request *req)
{
	char	 cred[HTTP_CRED_MAX];
	size_t	 n;

	conn_cred_free(c);
	if (req->hr_proxy_auth == NULL || http_basic_decode(req->hr_proxy_auth,
	    req->hr_proxy_auth_len, cred, sizeof(cred)) == -1)
		return;
	/* RFC 7617 2: the user-id ends at the first colon */
	n = (size_t)(strchr(cred, ':') - cred);
	c->c_rec->lr_user = conn_strndup(cred, n, USER_MAX_LEN);
	if (helper_conf_auth(c->c_conf) != NULL)
		c->c_cred = strdup(cred);
	explicit_bzero(cred, sizeof(cred));
}

/* A request head the parser refused: record what it saw, answer, close. */
static void
conn_head_error(struct conn *c, const struct http_request *req)
{
	struct logrec	*r = c->c_rec;

	r->lr_head_in = c->c_head->ch_buf.b_len;
	r->lr_method = conn_strndup(req->hr_method, req->hr_method_len,
	    req->hr_method_len);
	r->lr_authority = req->hr_target != NULL ? conn_target(req->hr_target,
	    req->hr_target_len) : conn_raw_target(c);
	r->lr_user_agent = conn_strndup(req->hr_user_agent,
	    req->hr_user_agent_len, USER_AGENT_MAX_LEN);
	conn_user(c, req);
	conn_fail(c, req->hr_status ? req->hr_status : 400, CLOSE_BAD_REQUEST,
	    req->hr_error != NULL ? req->hr_error : "bad request");
}

/*
 * The head is complete: record it, keep what the client sent after it
 * (a pipelined ClientHello goes up first), start the lookups for the
 * log line, and let conn_advance() take it from there.
 */
static void
conn_head_done(struct conn *c, const struct http_request *req)
{
	struct logrec	*r = c->c_rec;
	size_t		 rest;

	r->lr_nreq = ++c->c_nreq;
	r->lr_method = conn_strndup(req->hr_method, req->hr_method_len,
	    req->hr_method_len);
	r->lr_user_agent = conn_strndup(req->hr_user_agent,
	    req->hr_user_agent_len, USER_AGENT_MAX_LEN);
	conn_user(c, req);
	r->lr_host = conn_strndup(req->hr_host, req->hr_host_len,
	    req->hr_host_len);
	r->lr_head_in = req->hr_head_len;
	r->lr_port = req->hr_port;
	if (req->hr_forward) {
		/* the URL, and host:port as the authority a CONNECT names */
		r->lr_scheme = "http";
		r->lr_bytes_up = req->hr_head_len;
		r->lr_url = c->c_conf->c_strip_query_terms ?
		    conn_target(req->hr_target, req->hr_target_len) :
		    conn_strndup(req->hr_target, req->hr_target_len,
		    req->hr_target_len);
		if (r->lr_host != NULL)
			r->lr_authority = conn_authority(r->lr_host,
			    r->lr_port);
		if (r->lr_url == NULL || forward_prepare(c, req,
		    c->c_head->ch_buf.b_data, &c->c_head->ch_parse) == -1) {
			conn_fail(c, 500, CLOSE_BAD_REQUEST, "out of memory");
			return;
		}
	} else
		r->lr_authority = conn_target(req->hr_target,
		    req->hr_target_len);
	if (r->lr_method == NULL || r->lr_authority == NULL ||
	    r->lr_host == NULL) {
		conn_fail(c, 500, CLOSE_BAD_REQUEST, "out of memory");
		return;
	}
	rest = c->c_head->ch_buf.b_len - req->hr_head_len;
	if (rest > 0) {
		if ((c->c_up = malloc(sizeof(*c->c_up) + rest)) == NULL) {
			conn_fail(c, 500, CLOSE_BAD_REQUEST, "out of memory");
			return;
		}
		memcpy(c->c_up->rb_data,
		    c->c_head->ch_buf.b_data + req->hr_head_len, rest);
		c->c_up->rb_off = 0;
		c->c_up->rb_len = c->c_up->rb_cap = rest;
		c->c_up->rb_reply = 0;
	}
	conn_head_free(c);

	/* metadata lookups run beside the decision, DNS and connect */
	c->c_lookups = helper_log_start(c->c_worker, r);
	c->c_wait_since = ev_now(c->c_worker->w_loop);
	c->c_verdict = ACL_WAIT;
	conn_advance(c);
}

static void
conn_head_cb(EV_P_ ev_io *io, int revents)
{
	struct conn		*c = io->data;
	struct buf		*b = &c->c_head->ch_buf;
	size_t			 avail;
	ssize_t			 n;
	char			*p;

	/* the head buffer grows as bytes come, up to the limit */
	if ((p = buf_space(b, HEAD_READ_CHUNK, &avail)) == NULL) {
		conn_fail(c, 500, CLOSE_BAD_REQUEST, "out of memory");
		return;
	}
	if ((n = read(c->c_cfd, p, avail)) == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		conn_close(c, errno == ECONNRESET ? CLOSE_CLIENT_RESET :
		    CLOSE_CLIENT_EOF);
		return;
	}
	if (n == 0) {
		if (b->b_len > 0)
			conn_set_detail(c, "incomplete request head");
		conn_close(c, CLOSE_CLIENT_EOF);
		return;
	}
	/* a kept-alive connection's next request starts with its first byte */
	if (c->c_rec->lr_id == 0) {
		c->c_rec->lr_id = (c->c_worker->w_next_id +=
		    c->c_worker->w_id_step);
		c->c_rec->lr_start = ev_now(EV_A);
	}
	buf_commit(b, (size_t)n);
	(void)conn_head_parse(c);
}

/*
 * Parse what the head buffer holds.  Returns 1 once the head is done
 * (the connection has moved on, or failed), 0 while it is incomplete.
 */
static int
conn_head_parse(struct conn *c)
{
	struct buf		*b = &c->c_head->ch_buf;
	struct http_request	 req;
	size_t			 max = c->c_conf->c_request_header_max_size;

	switch (http_parse_request(&c->c_head->ch_parse, b->b_data, b->b_len,
	    max, &req)) {
	case HTTP_PARSE_INCOMPLETE:
		if (b->b_len < max)
			return 0;
		req.hr_status = 431;
		req.hr_error = "request header too large";
		/* FALLTHROUGH */
	case HTTP_PARSE_ERROR:
		conn_head_error(c, &req);
		return 1;
	case HTTP_PARSE_DONE:
		conn_head_done(c, &req);
		return 1;
	}
	return 1;
}

/* ------------------------------------------------------------- decision */

/* The resolved addresses are not needed any more. */
static void
conn_addrs_free(struct conn *c)
{
	free(c->c_addrs);
	c->c_addrs = NULL;
	c->c_naddrs = c->c_addri = 0;
}

/* For acl.c: an external acl's answer, from helper_conn.c. */
static int
conn_external(void *arg, const char *helper, const char *data)
{
	struct conn	*c = arg;

	return helper_acl_answer(c, helper, data,
	    (c->c_flags & CONN_HELLO_ASKED) != 0);
}

/* What the rules look at, as known now; the hello not yet (ar_hello 0). */
static void
conn_request(struct conn *c, struct acl_request *ar)
{
	struct logrec	*r = c->c_rec;

	memset(ar, 0, sizeof(*ar));
	ar->ar_client = &r->lr_client;
	ar->ar_method = r->lr_method;
	ar->ar_scheme = r->lr_scheme;
	ar->ar_host = r->lr_host;
	ar->ar_port = r->lr_port;
	ar->ar_addrs = c->c_addrs;
	ar->ar_naddrs = c->c_naddrs;
	ar->ar_self = ifaddr_list(c->c_worker, &ar->ar_nself);
	ar->ar_external = conn_external;
	ar->ar_arg = c;
	ar->ar_cred = c->c_cred;
	ar->ar_user = r->lr_user;
	/* a request to forward has no tunnel, so no hello will come */
	ar->ar_hello = r->lr_scheme != NULL;
	ar->ar_sni_match = PEEK_MATCH_NONE;
}

/*
 * Ask the rules, unless they have decided; a denial is a 403.  ACL_HOLD
 * moves on as an allow does: the tunnel opens with its client's first
 * bytes held (relay.c), and conn_hello() decides.
 */
static void
conn_decide(struct conn *c)
{
	struct logrec		*r = c->c_rec;
	struct acl_request	 ar;
	const char		*rule = NULL;

	if (c->c_verdict != ACL_WAIT)
		return;
	conn_request(c, &ar);
	c->c_verdict = acl_check(c->c_conf->c_acl, &ar, &rule);
	if (c->c_verdict == ACL_WAIT)
		return;
	/* now, so that interim records have it too */
	helper_acl_policy(c, r);
	if (c->c_verdict != ACL_DENY)
		return;
	/* the rule field says which line: no detail to repeat it */
	r->lr_rule = strdup(rule != NULL ? rule : "denied");
	conn_fail(c, acl_challenges(c->c_conf->c_acl, rule) ? 407 : 403,
	    CLOSE_DENIED, NULL);
}

/*
 * The rules with the hello (conn_hello()), and again each time a helper
 * they wait for answers or times out (conn_wake(), the timer).  Until
 * they decide, the hold goes on with CONN_HELLO_WAIT: the held bytes
 * stay, and the client is not read (its bytes wait in the kernel, so
 * that the hold stays bounded by RELAY_HOLD_MAX); the server's side
 * relays as before.
 */
static void
conn_hello_decide(struct conn *c)
{
	struct logrec		*r = c->c_rec;
	const struct logtls	*t = r->lr_tls;
	struct metrics		*m = &c->c_worker->w_metrics;
	struct acl_request	 ar;
	const char		*rule = NULL;
	char			 sni[HOST_NAME_MAX_LEN + 2];
	int			 complete;

	complete = t != NULL && t->lt_hello == PEEK_HELLO_COMPLETE;
	conn_request(c, &ar);
	ar.ar_hello = 1;
	c->c_flags |= CONN_HELLO_ASKED;
	if (complete) {
		ar.ar_sni_match = t->lt_match;
		/* a name too long for DNS matches no domain: none kept */
		if (t->lt_has_sni && t->lt_sni_len < sizeof(sni)) {
			memcpy(sni, t->lt_data, t->lt_sni_len);
			sni[t->lt_sni_len] = '\0';
			ar.ar_sni = sni;
		}
	}
	c->c_verdict = acl_check(c->c_conf->c_acl, &ar, &rule);
	helper_acl_policy(c, r);
	/* a helper asked with the hello's fields (%ssl::>sni) */
	if (c->c_verdict == ACL_WAIT && helper_acl_deadline(c) != 0.) {
		if (!(c->c_flags & CONN_HELLO_WAIT)) {
			c->c_flags |= CONN_HELLO_WAIT;
			ev_io_stop(c->c_worker->w_loop, &c->c_cread);
			conn_timer_arm(c);
		}
		return;
	}
	c->c_flags &= ~(CONN_HOLD | CONN_HELLO_WAIT);
	conn_addrs_free(c);
	if (c->c_verdict == ACL_ALLOW) {
		m->m_holds[HOLD_RELEASED]++;
		/* nothing held to write first: read the client again */
		if (c->c_up == NULL && !(c->c_flags & CONN_CLIENT_EOF))
			ev_io_start(c->c_worker->w_loop, &c->c_cread);
		relay_release(c);
		return;
	}
	m->m_holds[HOLD_DENIED]++;
	/*
	 * ACL_WAIT here with no helper on its way cannot be decided (DNS
	 * for a dst acl is not asked once the tunnel is open): a held
	 * tunnel does not wait for it, it is refused.  The client has had
	 * its 200: the line keeps status 200 and says close denied with
	 * the rule.
	 */
	r->lr_rule = strdup(c->c_verdict == ACL_DENY && rule != NULL ? rule :
	    "undecided after the hello");
	conn_close(c, CLOSE_DENIED);
}

void
conn_hello(struct conn *c)
{
	struct logrec		*r = c->c_rec;
	const struct logtls	*t = r->lr_tls;
	struct metrics		*m = &c->c_worker->w_metrics;

	/* no hold, or the hello is in and a helper is asked already */
	if (!(c->c_flags & CONN_HOLD) || (c->c_flags & CONN_HELLO_WAIT))
		return;
	/* closing anyway (peek_end() from conn_close()): nothing to decide */
	if (c->c_state != CONN_RELAY) {
		c->c_flags &= ~CONN_HOLD;
		m->m_holds[HOLD_ABORTED]++;
		return;
	}
	if ((t == NULL || t->lt_hello != PEEK_HELLO_COMPLETE) &&
	    c->c_conf->c_tls_hello_required) {
		c->c_flags &= ~CONN_HOLD;
		m->m_holds[HOLD_DENIED]++;
		r->lr_rule = strdup("tls_hello_required on");
		conn_close(c, CLOSE_DENIED);
		return;
	}
	conn_hello_decide(c);
}

/*
 * The only place a connection moves on between its head and connect():
 * called when the head is complete, when the addresses arrive and when
 * a helper answers.  The rules are asked first, so that a denial needs
 * no DNS query; DNS starts once, beside a decision still pending.  The
 * state it ends in names what the connection waits for.
 */
static void
conn_advance(struct conn *c)
{
	if (c->c_flags & CONN_ADVANCING)
		return;		/* a synchronous DNS answer: the caller goes on */
	c->c_flags |= CONN_ADVANCING;
	for (;;) {
		conn_decide(c);
		if (c->c_state >= CONN_REPLY || c->c_addrs != NULL ||
		    c->c_query != NULL)
			break;
		/* an idle connection to the same host:port needs no DNS */
		if (conn_pooled(c) == 0)
			continue;
		/* an answer at once (a literal, localhost, hosts) comes back
		 * through conn_resolved() before this returns */
		c->c_query = resolve_start(c->c_worker, c->c_rec->lr_host,
		    (uint16_t)c->c_rec->lr_port, conn_resolved, c);
		if (c->c_state >= CONN_REPLY || c->c_addrs == NULL)
			break;
		/* the addresses are in: the rules may decide with them */
	}
	c->c_flags &= ~CONN_ADVANCING;
	if (c->c_state >= CONN_REPLY)
		return;
	if (c->c_verdict == ACL_WAIT)
		conn_go(c, CONN_DECIDE);
	else if (c->c_addrs == NULL)
		conn_go(c, CONN_RESOLVE);
	else
		conn_connect_next(c);
}

/*
 * For a request to forward: an idle server connection to its host:port,
 * whose address then stands for the resolved ones (the rules decide on
 * where it really goes).  0 if one was taken, -1 if not.
 */
static int
conn_pooled(struct conn *c)
{
	struct sockaddr_storage	 ss;
	int			 fd;

	if (c->c_fwd == NULL || c->c_pooled != -1 ||
	    (fd = forward_pool_take(c, &ss)) == -1)
		return -1;
	if ((c->c_addrs = calloc(1, sizeof(*c->c_addrs))) == NULL) {
		close(fd);
		return -1;
	}
	c->c_addrs[0] = ss;
	c->c_naddrs = 1;
	c->c_addri = 0;
	c->c_pooled = fd;
	return 0;
}

/* A helper answered what the rules wait for (at the end of a loop turn). */
void
conn_wake(void *arg)
{
	struct conn	*c = arg;

	if (c->c_state == CONN_DECIDE)
		conn_advance(c);
	else if (c->c_state == CONN_RELAY && (c->c_flags & CONN_HELLO_WAIT))
		conn_hello_decide(c);
}

static void
conn_resolved(void *arg, int error, const struct sockaddr_storage *addrs,
    size_t naddrs, const char *errtext)
{
	struct conn	*c = arg;

	c->c_query = NULL;
	if (error || naddrs == 0) {
		conn_fail(c, 503, CLOSE_DNS_FAILED, errtext != NULL ? errtext :
		    "no address");
		return;
	}
	if ((c->c_addrs = calloc(naddrs, sizeof(*addrs))) == NULL) {
		conn_fail(c, 503, CLOSE_CONNECT_FAILED, "out of memory");
		return;
	}
	memcpy(c->c_addrs, addrs, naddrs * sizeof(*addrs));
	c->c_naddrs = naddrs;
	c->c_addri = 0;
	conn_advance(c);
}

/* -------------------------------------------------------------- connect */

static socklen_t
conn_sslen(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
}

/* Try the next resolved address; every one is tried before failing. */
static void
conn_connect_next(struct conn *c)
{
	const struct sockaddr_storage	*ss;
	int				 fd, on = 1;

	if (c->c_pooled != -1) {
		c->c_sfd = c->c_pooled;
		c->c_pooled = -1;
		c->c_rec->lr_server = c->c_addrs[0];
		c->c_rec->lr_has_server = 1;
		conn_go(c, CONN_FORWARD);
		return;
	}
	for (; c->c_addri < c->c_naddrs; c->c_addri++) {
		ss = &c->c_addrs[c->c_addri];
		fd = socket(ss->ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd == -1) {
			c->c_connect_errno = errno;
			continue;
		}
		/* as on the client's side (conn_accept()): a relay writes what
		 * it read at once, and Nagle would hold back a small write
		 * (a TLS record, an ssh keystroke) behind an unacked one */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		if (connect(fd, (const struct sockaddr *)ss,
		    conn_sslen(ss)) == -1 && errno != EINPROGRESS) {
			c->c_connect_errno = errno;
			close(fd);
			continue;
		}
		c->c_sfd = fd;
		conn_go(c, CONN_CONNECT);
		return;
	}
	if (c->c_connect_errno == ETIMEDOUT)
		conn_fail(c, 504, CLOSE_CONNECT_TIMEOUT, "connect timed out");
	else
		conn_fail(c, 503, CLOSE_CONNECT_FAILED,
		    strerror(c->c_connect_errno ? c->c_connect_errno :
		    ECONNREFUSED));
}

/* This address failed (error is its errno): on to the next. */
static void
conn_connect_failed(struct conn *c, int error)
{
	ev_io_stop(c->c_worker->w_loop, &c->c_swrite);
	close(c->c_sfd);
	c->c_sfd = -1;
	c->c_connect_errno = error;
	c->c_addri++;
	conn_connect_next(c);
}

static void
conn_connect_cb(EV_P_ ev_io *io, int revents)
{
	static const char	 ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	struct conn		*c = io->data;
	struct logrec		*r = c->c_rec;
	socklen_t		 len = sizeof(int);
	int			 error = 0, err;
	size_t			 n, rest;

	if (getsockopt(c->c_sfd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error != 0) {
		conn_connect_failed(c, error);
		return;
	}
	ev_io_stop(EV_A, &c->c_swrite);
	/* from connect() (the state's start) to established */
	metrics_observe(&c->c_worker->w_metrics.m_connect,
	    ev_now(EV_A) - c->c_state_since);
	r->lr_server = c->c_addrs[c->c_addri];
	r->lr_has_server = 1;
	if (c->c_fwd != NULL) {
		/* the addresses stay, should the request go again */
		conn_go(c, CONN_FORWARD);
		return;
	}
	/*
	 * The addresses go, but for a held hello: the rules are asked again
	 * with it (conn_hello_decide()), and a dst acl above the hello's
	 * must see what it saw at the CONNECT, not an unknown
	 */
	if (c->c_verdict != ACL_HOLD)
		conn_addrs_free(c);

	r->lr_status = 200;
	c->c_worker->w_stats.st_tunnels++;
	/*
	 * 39 bytes usually go at once, but not into a socket still full of
	 * a forwarded response before this CONNECT: the rest then goes
	 * first when relaying starts, as the reply it is.
	 */
	n = net_write(c->c_cfd, ok, sizeof(ok) - 1, &err);
	r->lr_reply_out = n;
	if (err != 0) {
		conn_close(c, err == ECONNRESET ? CLOSE_CLIENT_RESET :
		    CLOSE_CLIENT_EOF);
		return;
	}
	if ((rest = sizeof(ok) - 1 - n) > 0) {
		if ((c->c_down = malloc(sizeof(*c->c_down) + rest)) == NULL) {
			conn_close(c, CLOSE_CLIENT_EOF);
			return;
		}
		memcpy(c->c_down->rb_data, ok + n, rest);
		c->c_down->rb_off = 0;
		c->c_down->rb_len = c->c_down->rb_cap = rest;
		c->c_down->rb_reply = rest;
	}
	conn_go(c, CONN_RELAY);
}

/* ---------------------------------------------------------- forwarding */

void
conn_forward_reconnect(struct conn *c)
{
	ev_io_stop(c->c_worker->w_loop, &c->c_sread);
	ev_io_stop(c->c_worker->w_loop, &c->c_swrite);
	close(c->c_sfd);
	c->c_sfd = -1;
	c->c_rec->lr_has_server = 0;
	c->c_addri = 0;
	conn_connect_next(c);
}

/*
 * A forwarded request and its response are over.  Its line is written;
 * the connection closes, or waits for the client's next request with a
 * record of its own (what the client already sent is parsed at once).
 */
void
conn_forward_done(struct conn *c, int client_keep, int server_keep)
{
	struct worker	*w = c->c_worker;
	struct logrec	*r = c->c_rec, *next;
	struct conn_head *h;

	r->lr_end = ev_now(w->w_loop);
	w->w_stats.st_forwarded++;
	free(c->c_addrs);
	c->c_addrs = NULL;
	c->c_naddrs = c->c_addri = 0;
	if (!client_keep || w->w_stopping ||
	    (next = logrec_new()) == NULL ||
	    (h = calloc(1, sizeof(*h))) == NULL) {
		if (client_keep && !w->w_stopping)
			logrec_free(next);
		forward_end(c, server_keep, NULL);
		conn_close(c, CLOSE_DONE);
		return;
	}
	buf_init(&h->ch_buf, w->w_conf->c_request_header_max_size);
	forward_end(c, server_keep, &h->ch_buf);

	r->lr_close = CLOSE_DONE;
	w->w_stats.st_bytes_up += r->lr_bytes_up;
	w->w_stats.st_bytes_down += r->lr_bytes_down;
	/* the addresses go on; the id and the start come with the next
	 * request's first byte.  Copied first: the log owns r from here */
	next->lr_client = r->lr_client;
	next->lr_local = r->lr_local;
	helper_acl_policy(c, r);
	helper_acl_free(c);
	conn_cred_free(c);
	accesslog_submit(w, c->c_conf, r, c->c_lookups);
	c->c_lookups = NULL;

	/* the next request is decided under the configuration of its time */
	conf_unref(c->c_conf);
	c->c_conf = conf_ref(w->w_conf);
	c->c_rec = next;
	c->c_verdict = ACL_WAIT;
	c->c_head = h;
	conn_go(c, CONN_HEAD);
	if (h->ch_buf.b_len > 0) {
		next->lr_id = (w->w_next_id += w->w_id_step);
		next->lr_start = ev_now(w->w_loop);
		(void)conn_head_parse(c);
	}
}

/* ---------------------------------------------------------------- stop */

/*
 * The start of a drain (SIGTERM with a shutdown_lifetime): a kept-alive
 * connection waiting between requests has nothing to finish, so it is
 * closed now, without a line.  Every other connection goes on: one that
 * has not sent its head yet may still send it (it was accepted before
 * the listeners closed, and its client has no reason to retry), and a
 * forwarded request's connection closes after its response.
 */
void
conn_drain(struct worker *w)
{
	struct conn	*c, *next;

	for (c = TAILQ_FIRST(&w->w_conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, c_entry);
		if (conn_idle(c))
			conn_close(c, CLOSE_SHUTDOWN);
	}
}

const char *
conn_state_name(enum conn_state s)
{
	if ((size_t)s >= nitems(conn_state_names))
		return "unknown";
	return conn_state_names[s];
}

/* Stop: close every connection with reason "shutdown" (each is logged). */
void
conn_shutdown_all(struct worker *w)
{
	struct conn	*c;

	while ((c = TAILQ_FIRST(&w->w_conns)) != NULL)
		conn_close(c, CLOSE_SHUTDOWN);
}
