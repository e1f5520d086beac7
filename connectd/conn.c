/* conn.c: one client connection from accept to log line: states, timers, close */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectd.h"

#define HEAD_READ_CHUNK		4096
#define LINGER_TIMEOUT		2.0	/* discard client input after an error */

static const char *const conn_state_names[] = {
	[CONN_HEAD] = "head",
	[CONN_RESOLVE] = "resolve",
	[CONN_CONNECT] = "connect",
	[CONN_RELAY] = "relay",
	[CONN_REPLY] = "reply",
	[CONN_CLOSED] = "closed",
};

static void	conn_head_cb(EV_P_ ev_io *, int);
static void	conn_timer_cb(EV_P_ ev_timer *, int);
static void	conn_resolved(void *, int, const struct sockaddr_storage *,
		    size_t, const char *);
static void	conn_connect_next(struct conn *);
static void	conn_connect_cb(EV_P_ ev_io *, int);
static void	conn_reply_cb(EV_P_ ev_io *, int);
static void	conn_linger_cb(EV_P_ ev_io *, int);
static void	conn_fail(struct conn *, int, const char *);

static char *
conn_strndup(const char *s, size_t len)
{
	char	*p;

	if (s == NULL)
		return NULL;
	if ((p = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	/* the log record holds C strings; a NUL in the input ends them */
	return p;
}

/*
 * The second word of a request line the parser gave up on, as sent (up
 * to a NUL), so that the log shows what the client asked for.
 */
static char *
conn_raw_target(struct conn *c)
{
	const char	*s, *end, *sp;
	size_t		 len;

	end = c->c_head + c->c_head_len;
	if ((sp = memchr(c->c_head, ' ', c->c_head_len)) == NULL)
		return NULL;
	for (s = ++sp; s < end && *s != ' ' && *s != '\r' && *s != '\n';
	    s++)
		;
	len = (size_t)(s - sp);
	if (len == 0)
		return NULL;
	return conn_strndup(sp, len > AUTHORITY_MAX_LEN ? AUTHORITY_MAX_LEN :
	    len);
}

static void
conn_set_detail(struct conn *c, const char *detail)
{
	free(c->c_rec.lr_detail);
	c->c_rec.lr_detail = strdup(detail);
}

/* The deadline of the current state; the timer is re-armed lazily. */
static ev_tstamp
conn_state_deadline(struct conn *c)
{
	struct conf	*cf = c->c_conf;
	ev_tstamp	 d;

	switch (c->c_state) {
	case CONN_HEAD:
		return c->c_state_since + cf->c_request_header_timeout;
	case CONN_RESOLVE:
	case CONN_CONNECT:
		return c->c_state_since + cf->c_connect_timeout;
	case CONN_RELAY:
		d = c->c_activity + cf->c_read_timeout;
		if ((c->c_flags & (CONN_CLIENT_EOF | CONN_SERVER_EOF)) &&
		    c->c_half_since + cf->c_half_closed_timeout < d)
			d = c->c_half_since + cf->c_half_closed_timeout;
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
	life = c->c_rec.lr_start + c->c_conf->c_client_lifetime;
	return c->c_state != CONN_REPLY && life < d ? life : d;
}

void
conn_timer_arm(struct conn *c)
{
	struct ev_loop	*loop = c->c_worker->w_loop;
	ev_tstamp	 left;

	left = conn_deadline(c) - ev_now(loop);
	if (left < 0.001)
		left = 0.001;
	ev_timer_stop(loop, &c->c_timer);
	ev_timer_set(&c->c_timer, left, 0.);
	ev_timer_start(loop, &c->c_timer);
}

void
conn_set_state(struct conn *c, enum conn_state state)
{
	log_debug("conn %llu: %s -> %s", (unsigned long long)c->c_id,
	    conn_state_names[c->c_state], conn_state_names[state]);
	c->c_state = state;
	c->c_state_since = ev_now(c->c_worker->w_loop);
	if (state != CONN_CLOSED)
		conn_timer_arm(c);
}

void
conn_accept(struct worker *w, int fd, const struct sockaddr_storage *peer,
    const struct sockaddr_storage *local)
{
	struct conn	*c;
	unsigned	 n, max;
	int		 on = 1;
	char		 detail[96];

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("conn: calloc");
		close(fd);
		return;
	}
	c->c_cfd = fd;
	c->c_sfd = -1;
	c->c_worker = w;
	c->c_conf = conf_ref(w->w_conf);
	c->c_id = ++w->w_next_id;
	c->c_rec.lr_id = c->c_id;
	c->c_rec.lr_start = ev_now(w->w_loop);
	c->c_rec.lr_client = *peer;
	c->c_rec.lr_local = *local;
	c->c_state = CONN_HEAD;
	c->c_activity = ev_now(w->w_loop);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

	ev_io_init(&c->c_cread, conn_head_cb, fd, EV_READ);
	ev_io_init(&c->c_cwrite, conn_reply_cb, fd, EV_WRITE);
	ev_init(&c->c_sread, NULL);
	ev_init(&c->c_swrite, NULL);
	c->c_sread.fd = c->c_swrite.fd = -1;
	c->c_cread.data = c->c_cwrite.data = c;
	c->c_sread.data = c->c_swrite.data = c;
	ev_init(&c->c_timer, conn_timer_cb);
	c->c_timer.data = c;

	TAILQ_INSERT_TAIL(&w->w_conns, c, c_entry);
	w->w_stats.st_accepted++;
	w->w_stats.st_active++;
	listener_limit(w);
	n = limit_client_add(w, peer);

	conn_set_state(c, CONN_HEAD);
	max = c->c_conf->c_client_ip_max_connections;
	if (max != 0 && n > max) {
		snprintf(detail, sizeof(detail), "client_ip_max_connections %u "
		    "reached", max);
		conn_set_detail(c, detail);
		conn_fail(c, 503, "limit");
		return;
	}
	ev_io_start(w->w_loop, &c->c_cread);
}

/*
 * The one way out.  The reason becomes the log line's close field.  A
 * reset on one side is passed on to the other as a reset.
 */
void
conn_close(struct conn *c, const char *reason)
{
	struct worker	*w = c->c_worker;
	struct linger	 lg = { 1, 0 };

	if (c->c_state == CONN_CLOSED)
		return;
	conn_set_state(c, CONN_CLOSED);
	ev_timer_stop(w->w_loop, &c->c_timer);
	ev_io_stop(w->w_loop, &c->c_cread);
	ev_io_stop(w->w_loop, &c->c_cwrite);
	ev_io_stop(w->w_loop, &c->c_sread);
	ev_io_stop(w->w_loop, &c->c_swrite);
	if (c->c_query != NULL) {
		resolve_cancel(c->c_query);
		c->c_query = NULL;
	}
	if (strcmp(reason, "client_reset") == 0 && c->c_sfd != -1)
		(void)setsockopt(c->c_sfd, SOL_SOCKET, SO_LINGER, &lg,
		    sizeof(lg));
	if (strcmp(reason, "server_reset") == 0 && c->c_cfd != -1)
		(void)setsockopt(c->c_cfd, SOL_SOCKET, SO_LINGER, &lg,
		    sizeof(lg));
	if (c->c_cfd != -1)
		close(c->c_cfd);
	if (c->c_sfd != -1)
		close(c->c_sfd);
	c->c_cfd = c->c_sfd = -1;

	if (c->c_rec.lr_end == 0)
		c->c_rec.lr_end = ev_now(w->w_loop);
	c->c_rec.lr_close = reason;
	w->w_stats.st_bytes_up += c->c_rec.lr_bytes_up;
	w->w_stats.st_bytes_down += c->c_rec.lr_bytes_down;
	/* a helper answer still on its way: helper.c writes the line later */
	if (helper_conn_finish(c) == 0)
		accesslog_write(w->w_conf, &c->c_rec);

	TAILQ_REMOVE(&w->w_conns, c, c_entry);
	w->w_stats.st_active--;
	limit_client_del(w, &c->c_rec.lr_client);
	listener_limit(w);
	relay_free_buffers(c);
	free(c->c_head);
	free(c->c_addrs);
	logrec_clear(&c->c_rec);
	conf_unref(c->c_conf);
	free(c);

	if (w->w_stopping && TAILQ_EMPTY(&w->w_conns))
		ev_break(w->w_loop, EVBREAK_ALL);
}

/*
 * Send an error reply, then close with the given reason once it is out.
 * The client's further input is read and discarded for a moment so that
 * close() does not turn into a reset that destroys the reply.
 */
static void
conn_fail(struct conn *c, int status, const char *reason)
{
	struct worker	*w = c->c_worker;
	char		 buf[512];
	int		 n;

	ev_io_stop(w->w_loop, &c->c_cread);
	ev_io_stop(w->w_loop, &c->c_sread);
	ev_io_stop(w->w_loop, &c->c_swrite);
	if (c->c_query != NULL) {
		resolve_cancel(c->c_query);
		c->c_query = NULL;
	}
	if (c->c_sfd != -1) {
		close(c->c_sfd);
		c->c_sfd = -1;
	}
	relay_free_buffers(c);
	if (c->c_head != NULL && c->c_rec.lr_head_in == 0)
		c->c_rec.lr_head_in = c->c_head_len;
	c->c_rec.lr_status = status;
	c->c_reason = reason;
	w->w_stats.st_refused++;

	if ((n = http_reply_error(status, buf, sizeof(buf))) <= 0) {
		conn_close(c, reason);
		return;
	}
	if ((c->c_down = malloc(sizeof(*c->c_down) + (size_t)n)) == NULL) {
		conn_close(c, reason);
		return;
	}
	memcpy(c->c_down->rb_data, buf, (size_t)n);
	c->c_down->rb_off = 0;
	c->c_down->rb_len = c->c_down->rb_cap = (size_t)n;
	conn_set_state(c, CONN_REPLY);
	ev_io_stop(w->w_loop, &c->c_cwrite);
	ev_io_init(&c->c_cwrite, conn_reply_cb, c->c_cfd, EV_WRITE);
	c->c_cwrite.data = c;
	conn_reply_cb(w->w_loop, &c->c_cwrite, EV_WRITE);
}

static void
conn_reply_cb(EV_P_ ev_io *io, int revents)
{
	struct conn		*c = io->data;
	struct relay_buf	*b = c->c_down;
	ssize_t			 n;

	while (b->rb_off < b->rb_len) {
		n = write(c->c_cfd, b->rb_data + b->rb_off,
		    b->rb_len - b->rb_off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			ev_io_start(EV_A, &c->c_cwrite);
			return;
		}
		if (n <= 0) {
			conn_close(c, c->c_reason);
			return;
		}
		b->rb_off += (size_t)n;
		c->c_rec.lr_reply_out += (uint64_t)n;
	}
	ev_io_stop(EV_A, &c->c_cwrite);
	free(c->c_down);
	c->c_down = NULL;
	/* the request ends here; lingering for the client's FIN is not timed */
	c->c_rec.lr_end = ev_now(EV_A);
	if (shutdown(c->c_cfd, SHUT_WR) == -1) {
		conn_close(c, c->c_reason);
		return;
	}
	ev_io_stop(EV_A, &c->c_cread);
	ev_io_init(&c->c_cread, conn_linger_cb, c->c_cfd, EV_READ);
	c->c_cread.data = c;
	ev_io_start(EV_A, &c->c_cread);
}

static void
conn_linger_cb(EV_P_ ev_io *io, int revents)
{
	struct conn	*c = io->data;
	char		 buf[4096];
	ssize_t		 n;

	for (;;) {
		n = read(c->c_cfd, buf, sizeof(buf));
		if (n > 0)
			continue;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		conn_close(c, c->c_reason);
		return;
	}
}

/* The request head is complete: record it, then resolve. */
static void
conn_head_done(struct conn *c, const struct http_request *req)
{
	struct logrec		*r = &c->c_rec;
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	struct resolve_query	*q;
	size_t			 rest;
	char			 host[HOST_NAME_MAX_LEN + 1];

	ev_io_stop(c->c_worker->w_loop, &c->c_cread);
	r->lr_head_in = req->hr_head_len;
	r->lr_port = req->hr_port;
	memcpy(host, req->hr_host, req->hr_host_len);
	host[req->hr_host_len] = '\0';
	if ((r->lr_host = strdup(host)) == NULL) {
		conn_fail(c, 500, "bad_request");
		return;
	}
	/* metadata lookups run beside DNS and connect */
	helper_conn_start(c);
	if (conn_policy(c) == ACL_DENY)
		return;		/* c may be gone */

	/* bytes sent after the head (a pipelined ClientHello) go up first */
	rest = c->c_head_len - req->hr_head_len;
	if (rest > 0) {
		c->c_up = malloc(sizeof(*c->c_up) + rest);
		if (c->c_up == NULL) {
			conn_fail(c, 500, "bad_request");
			return;
		}
		memcpy(c->c_up->rb_data, c->c_head + req->hr_head_len, rest);
		c->c_up->rb_off = 0;
		c->c_up->rb_len = c->c_up->rb_cap = rest;
	}
	free(c->c_head);
	c->c_head = NULL;
	c->c_head_len = c->c_head_cap = 0;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(req->hr_port);
		conn_set_state(c, CONN_RESOLVE);
		conn_resolved(c, 0, &ss, 1, NULL);
		return;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(req->hr_port);
		conn_set_state(c, CONN_RESOLVE);
		conn_resolved(c, 0, &ss, 1, NULL);
		return;
	}
	conn_set_state(c, CONN_RESOLVE);
	/* NULL: the callback already ran and c may be gone */
	q = resolve_start(c->c_worker, host, req->hr_port, conn_resolved, c);
	if (q != NULL)
		c->c_query = q;
}

static void
conn_head_cb(EV_P_ ev_io *io, int revents)
{
	struct conn		*c = io->data;
	struct logrec		*r = &c->c_rec;
	struct http_request	 req;
	size_t			 max = c->c_conf->c_request_header_max_size;
	size_t			 want, cap;
	ssize_t			 n;
	char			*p;

	/* the head buffer grows from 4 KiB up to the limit, as bytes come */
	if (c->c_head_len == c->c_head_cap) {
		cap = c->c_head_cap == 0 ? HEAD_READ_CHUNK : c->c_head_cap * 2;
		if (cap > max)
			cap = max;
		if ((p = realloc(c->c_head, cap + 1)) == NULL) {
			conn_close(c, "bad_request");
			return;
		}
		c->c_head = p;
		c->c_head_cap = cap;
	}
	want = c->c_head_cap - c->c_head_len;
	n = read(c->c_cfd, c->c_head + c->c_head_len, want);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		conn_close(c, errno == ECONNRESET ? "client_reset" :
		    "client_eof");
		return;
	}
	if (n == 0) {
		if (c->c_head_len > 0)
			conn_set_detail(c, "incomplete request head");
		conn_close(c, "client_eof");
		return;
	}
	c->c_head_len += (size_t)n;
	c->c_head[c->c_head_len] = '\0';

	switch (http_parse_request(c->c_head, c->c_head_len, max, &req)) {
	case HTTP_PARSE_INCOMPLETE:
		if (c->c_head_len < max)
			return;
		req.hr_status = 431;
		req.hr_error = "request header too large";
		/* FALLTHROUGH */
	case HTTP_PARSE_ERROR:
		r->lr_head_in = c->c_head_len;
		if (req.hr_method != NULL)
			r->lr_method = conn_strndup(req.hr_method,
			    req.hr_method_len);
		if (req.hr_target != NULL)
			r->lr_authority = conn_strndup(req.hr_target,
			    req.hr_target_len);
		else
			r->lr_authority = conn_raw_target(c);
		if (req.hr_user_agent != NULL)
			r->lr_user_agent = conn_strndup(req.hr_user_agent,
			    req.hr_user_agent_len);
		conn_set_detail(c, req.hr_error != NULL ? req.hr_error :
		    "bad request");
		conn_fail(c, req.hr_status ? req.hr_status : 400,
		    "bad_request");
		return;
	case HTTP_PARSE_DONE:
		break;
	}
	r->lr_method = conn_strndup(req.hr_method, req.hr_method_len);
	r->lr_authority = conn_strndup(req.hr_target, req.hr_target_len);
	if (req.hr_user_agent != NULL) {
		p = conn_strndup(req.hr_user_agent,
		    req.hr_user_agent_len > USER_AGENT_MAX_LEN ?
		    USER_AGENT_MAX_LEN : req.hr_user_agent_len);
		r->lr_user_agent = p;
	}
	conn_head_done(c, &req);
}

static void
conn_resolved(void *arg, int error, const struct sockaddr_storage *addrs,
    size_t naddrs, const char *errtext)
{
	struct conn	*c = arg;

	c->c_query = NULL;
	if (error || naddrs == 0) {
		conn_set_detail(c, errtext != NULL ? errtext :
		    "no address");
		conn_fail(c, 503, "dns_failed");
		return;
	}
	if ((c->c_addrs = calloc(naddrs, sizeof(*addrs))) == NULL) {
		conn_fail(c, 503, "connect_failed");
		return;
	}
	memcpy(c->c_addrs, addrs, naddrs * sizeof(*addrs));
	c->c_naddrs = naddrs;
	c->c_addri = 0;
	if (conn_policy(c) == ACL_ALLOW)
		conn_connect_next(c);
}

/*
 * Ask the access rules.  They are asked right after the request head and
 * again when something they waited for arrives (addresses for a dst acl,
 * a helper's answer for an external acl).  Connecting starts only once
 * they allow it and the addresses are known; a denial is a 403.
 */
int
conn_policy(struct conn *c)
{
	const char	*rule = NULL;
	int		 verdict;

	if (c->c_flags & CONN_DENIED)
		return ACL_DENY;
	verdict = acl_check(c, &rule);
	if (verdict == ACL_DENY) {
		c->c_flags |= CONN_DENIED;
		if (rule != NULL && c->c_rec.lr_rule == NULL)
			c->c_rec.lr_rule = strdup(rule);
		conn_set_detail(c, rule != NULL ? rule : "denied");
		conn_fail(c, 403, "denied");
	}
	return verdict;
}

/* A helper answer arrived that the rules were waiting for. */
void
conn_policy_wakeup(struct conn *c)
{
	if (c->c_state != CONN_RESOLVE || c->c_naddrs == 0 ||
	    c->c_sfd != -1)
		return;
	if (conn_policy(c) == ACL_ALLOW)
		conn_connect_next(c);
}

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
	struct worker	*w = c->c_worker;
	const struct sockaddr_storage *ss;
	int		 fd;

	for (; c->c_addri < c->c_naddrs; c->c_addri++) {
		ss = &c->c_addrs[c->c_addri];
		fd = socket(ss->ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd == -1) {
			c->c_connect_errno = errno;
			continue;
		}
		if (connect(fd, (const struct sockaddr *)ss,
		    conn_sslen(ss)) == -1 && errno != EINPROGRESS) {
			c->c_connect_errno = errno;
			close(fd);
			continue;
		}
		c->c_sfd = fd;
		conn_set_state(c, CONN_CONNECT);
		ev_io_init(&c->c_swrite, conn_connect_cb, fd, EV_WRITE);
		c->c_swrite.data = c;
		ev_io_start(w->w_loop, &c->c_swrite);
		return;
	}
	if (c->c_connect_errno == ETIMEDOUT) {
		conn_set_detail(c, "connect timed out");
		conn_fail(c, 504, "connect_timeout");
	} else {
		conn_set_detail(c, strerror(c->c_connect_errno ?
		    c->c_connect_errno : ECONNREFUSED));
		conn_fail(c, 503, "connect_failed");
	}
}

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
	struct logrec		*r = &c->c_rec;
	socklen_t		 len = sizeof(int);
	int			 error = 0;
	ssize_t			 n;

	if (getsockopt(c->c_sfd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error != 0) {
		conn_connect_failed(c, error);
		return;
	}
	ev_io_stop(EV_A, &c->c_swrite);
	r->lr_server = c->c_addrs[c->c_addri];
	r->lr_has_server = 1;
	free(c->c_addrs);
	c->c_addrs = NULL;
	c->c_naddrs = c->c_addri = 0;

	r->lr_status = 200;
	c->c_worker->w_stats.st_tunnels++;
	/* 39 bytes into an empty socket buffer: a short write is a dead client */
	n = write(c->c_cfd, ok, sizeof(ok) - 1);
	if (n != (ssize_t)(sizeof(ok) - 1)) {
		if (n > 0)
			r->lr_reply_out = (uint64_t)n;
		conn_close(c, n == -1 && errno == ECONNRESET ? "client_reset" :
		    "client_eof");
		return;
	}
	r->lr_reply_out = (uint64_t)n;
	relay_start(c);
}

static void
conn_timer_cb(EV_P_ ev_timer *t, int revents)
{
	struct conn	*c = t->data;

	if (conn_deadline(c) > ev_now(EV_A) + 0.0005) {
		conn_timer_arm(c);
		return;
	}
	if (c->c_state != CONN_REPLY && ev_now(EV_A) + 0.0005 >=
	    c->c_rec.lr_start + c->c_conf->c_client_lifetime) {
		conn_set_detail(c, "client_lifetime reached");
		conn_close(c, "lifetime");
		return;
	}
	switch (c->c_state) {
	case CONN_HEAD:
		conn_set_detail(c, "no complete request head in time");
		conn_fail(c, 408, "header_timeout");
		break;
	case CONN_RESOLVE:
		conn_set_detail(c, "name resolution timed out");
		conn_fail(c, 503, "dns_failed");
		break;
	case CONN_CONNECT:
		conn_connect_failed(c, ETIMEDOUT);
		break;
	case CONN_RELAY:
		conn_close(c, "idle_timeout");
		break;
	case CONN_REPLY:
		conn_close(c, c->c_reason);
		break;
	case CONN_CLOSED:
		break;
	}
}

/* Stop: close every connection with reason "shutdown" (each is logged). */
void
conn_shutdown_all(struct worker *w)
{
	struct conn	*c;

	while ((c = TAILQ_FIRST(&w->w_conns)) != NULL)
		conn_close(c, "shutdown");
}
