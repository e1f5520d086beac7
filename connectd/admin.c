/* admin.c: the metrics_port listener: GET /metrics, /healthz and /readyz, one request per connection */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectd.h"
#include "net.h"

/*
 * A listener apart from http_port, as Squid keeps its cache manager
 * apart from proxy traffic: only here is an origin-form request
 * ("GET /metrics HTTP/1.1") answered, and nothing here reaches
 * conn.c, so no request to it writes an access log line.  Scrapers and
 * kubelet probes send one small request and read one response: each
 * connection gets one response with "Connection: close" (RFC 9112
 * 9.6), built whole before the first byte goes out, and written
 * without blocking; a client that reads too slowly is cut off at
 * ADMIN_TIMEOUT.  Every buffer is bounded.
 */

#define ADMIN_CONNS_MAX		16	/* at once; more wait in the backlog */
#define ADMIN_HEAD_MAX		4096	/* a request head */
#define ADMIN_BODY_MAX		(4 * 1024 * 1024)
#define ADMIN_TIMEOUT		10.0	/* seconds for a whole exchange */
#define ADMIN_LINGER		1.0	/* reading what follows the response */
#define ADMIN_NOFD_REST		1.0	/* no accept for this long on EMFILE */
#define ADMIN_ACCEPT_BURST	16

/* text/plain as Prometheus' text format 0.0.4 names it */
#define ADMIN_METRICS_TYPE	"text/plain; version=0.0.4; charset=utf-8"
#define ADMIN_TEXT_TYPE		"text/plain; charset=utf-8"

struct admin;

struct admin_conn {
	struct admin		*ac_admin;
	int			 ac_fd;
	ev_io			 ac_io;
	ev_timer		 ac_timer;
	struct buf		 ac_in;		/* the request head */
	struct buf		 ac_out;	/* the whole response */
	size_t			 ac_off;	/* of ac_out, written */
	TAILQ_ENTRY(admin_conn)	 ac_entry;
};

struct admin {
	struct worker		*a_worker;
	int			 a_fd;		/* -1: not listening */
	struct sockaddr_storage	 a_addr;
	socklen_t		 a_addrlen;
	char			*a_text;	/* as written, for messages */
	ev_io			 a_io;
	ev_timer		 a_rest;	/* after EMFILE */
	int			 a_resting;
	TAILQ_HEAD(, admin_conn) a_conns;
	size_t			 a_nconns;
};

static void	admin_accept_cb(EV_P_ ev_io *, int);
static void	admin_read_cb(EV_P_ ev_io *, int);
static void	admin_write_cb(EV_P_ ev_io *, int);
static void	admin_linger_cb(EV_P_ ev_io *, int);
static void	admin_timer_cb(EV_P_ ev_timer *, int);

/* ------------------------------------------------------------ listener */

/* Accept while there is room and no rest after EMFILE. */
static void
admin_watch(struct admin *a)
{
	struct ev_loop	*loop = a->a_worker->w_loop;

	if (a->a_fd != -1 && !a->a_resting && a->a_nconns < ADMIN_CONNS_MAX)
		ev_io_start(loop, &a->a_io);
	else
		ev_io_stop(loop, &a->a_io);
}

static void
admin_unlisten(struct admin *a)
{
	if (a->a_fd == -1)
		return;
	ev_io_stop(a->a_worker->w_loop, &a->a_io);
	close(a->a_fd);
	a->a_fd = -1;
}

static void
admin_rest_cb(EV_P_ ev_timer *t, int revents)
{
	struct admin	*a = t->data;

	a->a_resting = 0;
	admin_watch(a);
}

static struct admin *
admin_new(struct worker *w)
{
	struct admin	*a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	a->a_worker = w;
	a->a_fd = -1;
	TAILQ_INIT(&a->a_conns);
	ev_init(&a->a_rest, admin_rest_cb);
	a->a_rest.data = a;
	return a;
}

int
admin_sync(struct worker *w, const struct conf *cf, char *err,
    size_t errlen)
{
	const struct listen_conf	*lc = cf->c_metrics;
	struct admin			*a;
	char				*text;
	int				 fd, saved, yielded = 0;

	if ((a = w->w_admin) == NULL) {
		if (lc == NULL)
			return 0;
		if ((a = w->w_admin = admin_new(w)) == NULL) {
			snprintf(err, errlen, "metrics_port: %s",
			    strerror(errno));
			return -1;
		}
	}
	if (lc == NULL) {
		if (a->a_fd != -1)
			log_info("stopped listening on metrics_port %s",
			    a->a_text);
		admin_unlisten(a);
		return 0;
	}
	if (a->a_fd != -1 && a->a_addrlen == lc->lc_addrlen &&
	    memcmp(&a->a_addr, &lc->lc_addr, lc->lc_addrlen) == 0)
		return 0;
	if ((text = strdup(lc->lc_text)) == NULL) {
		snprintf(err, errlen, "metrics_port: %s", strerror(errno));
		return -1;
	}
	/* 127.0.0.1:P to 0.0.0.0:P: the old socket must let go first */
	if (a->a_fd != -1 && addr_bind_clash(&a->a_addr, &lc->lc_addr)) {
		admin_unlisten(a);
		yielded = 1;
	}
	if ((fd = listener_bind(&lc->lc_addr, lc->lc_addrlen)) == -1) {
		saved = errno;
		snprintf(err, errlen, "metrics_port %s: %s", lc->lc_text,
		    strerror(saved));
		free(text);
		if (!yielded)
			return -1;
		if ((a->a_fd = listener_bind(&a->a_addr, a->a_addrlen)) ==
		    -1) {
			log_warn("stopped listening on metrics_port %s: cannot "
			    "bind it again", a->a_text);
			return -1;
		}
		ev_io_init(&a->a_io, admin_accept_cb, a->a_fd, EV_READ);
		a->a_io.data = a;
		admin_watch(a);
		return -1;
	}
	if (a->a_fd != -1)
		log_info("stopped listening on metrics_port %s", a->a_text);
	admin_unlisten(a);
	free(a->a_text);
	a->a_text = text;
	a->a_fd = fd;
	a->a_addr = lc->lc_addr;
	a->a_addrlen = lc->lc_addrlen;
	ev_io_init(&a->a_io, admin_accept_cb, a->a_fd, EV_READ);
	a->a_io.data = a;
	admin_watch(a);
	log_info("metrics and health on %s", a->a_text);
	return 0;
}

static void
admin_conn_free(struct admin_conn *ac)
{
	struct admin	*a = ac->ac_admin;
	struct ev_loop	*loop = a->a_worker->w_loop;

	ev_io_stop(loop, &ac->ac_io);
	ev_timer_stop(loop, &ac->ac_timer);
	close(ac->ac_fd);
	buf_free(&ac->ac_in);
	buf_free(&ac->ac_out);
	TAILQ_REMOVE(&a->a_conns, ac, ac_entry);
	a->a_nconns--;
	free(ac);
	admin_watch(a);
}

void
admin_free(struct worker *w)
{
	struct admin	*a = w->w_admin;

	if (a == NULL)
		return;
	while (!TAILQ_EMPTY(&a->a_conns))
		admin_conn_free(TAILQ_FIRST(&a->a_conns));
	admin_unlisten(a);
	ev_timer_stop(w->w_loop, &a->a_rest);
	free(a->a_text);
	free(a);
	w->w_admin = NULL;
}

static void
admin_accept_cb(EV_P_ ev_io *io, int revents)
{
	struct admin		*a = io->data;
	struct admin_conn	*ac;
	int			 fd, i;

	for (i = 0; i < ADMIN_ACCEPT_BURST && a->a_nconns < ADMIN_CONNS_MAX;
	    i++) {
		if ((fd = accept4(a->a_fd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC)) == -1) {
			if (errno == EMFILE || errno == ENFILE) {
				/* the queue stays readable: rest, no spin */
				log_warn("accept on metrics_port %s",
				    a->a_text);
				a->a_resting = 1;
				ev_timer_set(&a->a_rest, ADMIN_NOFD_REST, 0.);
				ev_timer_start(EV_A, &a->a_rest);
			}
			break;
		}
		if ((ac = calloc(1, sizeof(*ac))) == NULL) {
			log_warn("admin: calloc");
			close(fd);
			break;
		}
		ac->ac_admin = a;
		ac->ac_fd = fd;
		buf_init(&ac->ac_in, ADMIN_HEAD_MAX);
		buf_init(&ac->ac_out, 0);	/* bounded by what goes in */
		ev_io_init(&ac->ac_io, admin_read_cb, fd, EV_READ);
		ac->ac_io.data = ac;
		ev_io_start(EV_A, &ac->ac_io);
		ev_timer_init(&ac->ac_timer, admin_timer_cb, ADMIN_TIMEOUT, 0.);
		ac->ac_timer.data = ac;
		ev_timer_start(EV_A, &ac->ac_timer);
		TAILQ_INSERT_TAIL(&a->a_conns, ac, ac_entry);
		a->a_nconns++;
	}
	admin_watch(a);
}

/* ------------------------------------------------------------ readiness */

/*
 * Ready once the configuration is loaded (it is, or connectd would not
 * run), every http_port is bound, and each external_acl_type helper has
 * answered once (helper_probe_start() asks them), or there is none; the
 * helpers' part is learned once for the life of the process, so that a
 * helper's restart does not take the pod out of its Service.  Not
 * ready again once SIGTERM has come: the Service should stop sending
 * while the tunnels drain.
 */
const char *
admin_unready(struct worker *w)
{
	static __thread char	 why[128];	/* each worker's thread */
	const char		*name;

	if (w->w_stopping)
		return "shutting down";
	if (!w->w_listening)
		return "http_port not bound yet";
	if (!w->w_helpers_ready) {
		if ((name = helper_unanswered(w)) != NULL) {
			snprintf(why, sizeof(why), "helper %s has not "
			    "answered yet", name);
			return why;
		}
		w->w_helpers_ready = 1;
	}
	return NULL;
}

/* ------------------------------------------------------------- requests */

static const char *
admin_status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	}
	return "Unknown";
}

/*
 * The response into ac_out: the head, then the body unless the request
 * was HEAD (its Content-Length is still the body's, RFC 9110 9.3.2).
 */
static int
admin_response(struct admin_conn *ac, int status, const char *type,
    const struct buf *body, int head_only)
{
	char	 head[512];
	int	 n;

	n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n"
	    "Server: connectd\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "%s"
	    "Connection: close\r\n"
	    "\r\n", status, admin_status_text(status), type, body->b_len,
	    status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(head) ||
	    buf_add(&ac->ac_out, head, (size_t)n) == -1 ||
	    (!head_only && body->b_len > 0 &&
	    buf_add(&ac->ac_out, body->b_data, body->b_len) == -1))
		return -1;
	return 0;
}

/* A method is a token (RFC 9110 5.6.2). */
static int
admin_token(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f ||
		    strchr("\"(),/:;<=>?@[\\]{}", s[i]) != NULL)
			return 0;
	return 1;
}

/* The end of the head: an empty line, CRLF or a bare LF (RFC 9112 2.2). */
static int
admin_head_done(const char *buf, size_t len)
{
	const char	*p = buf, *end = buf + len;

	for (; p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL;
	    p++) {
		if (p + 1 < end && p[1] == '\n')
			return 1;
		if (p + 2 < end && p[1] == '\r' && p[2] == '\n')
			return 1;
	}
	return 0;
}

/*
 * The head read so far, buf[0..len): 0 while it is incomplete and
 * under max bytes, 431 once it is not, 400 for a request line that is
 * not "METHOD SP TARGET SP HTTP/1.x" (RFC 9112 3) with an origin-form
 * target, else 200 with the method and the path (the target without
 * its query) in *aq, pointing into buf.  Header fields are not looked
 * at: nothing here depends on them.  Pure; fuzz/fuzz_admin.c.
 */
int
admin_parse(const char *buf, size_t len, size_t max,
    struct admin_request *aq)
{
	const char	*sp1, *sp2, *eol, *target;
	size_t		 line, tlen;

	memset(aq, 0, sizeof(*aq));
	if (!admin_head_done(buf, len))
		return len >= max ? 431 : 0;
	eol = memchr(buf, '\n', len);
	line = (size_t)(eol - buf);
	if (line > 0 && buf[line - 1] == '\r')
		line--;
	if ((sp1 = memchr(buf, ' ', line)) == NULL ||
	    (sp2 = memchr(sp1 + 1, ' ', line - (size_t)(sp1 + 1 - buf))) ==
	    NULL)
		return 400;
	target = sp1 + 1;
	tlen = (size_t)(sp2 - target);
	if (!admin_token(buf, (size_t)(sp1 - buf)) || tlen == 0 ||
	    line - (size_t)(sp2 + 1 - buf) != 8 ||
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 &&
	    memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return 400;
	/* origin-form only (RFC 9112 3.2.1): this is no proxy port */
	if (target[0] != '/')
		return 400;
	aq->aq_method = buf;
	aq->aq_method_len = (size_t)(sp1 - buf);
	aq->aq_path = target;
	for (aq->aq_path_len = 0; aq->aq_path_len < tlen &&
	    target[aq->aq_path_len] != '?'; aq->aq_path_len++)
		;
	return 200;
}

static int
admin_is(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && memcmp(s, word, len) == 0;
}

/* What a parsed request gets: its status, and the body's text. */
static int
admin_route(struct admin_conn *ac, const struct admin_request *aq,
    struct buf *body, const char **type, int *head_only)
{
	struct worker	*w = ac->ac_admin->a_worker;
	const char	*why;

	*type = ADMIN_TEXT_TYPE;
	*head_only = admin_is(aq->aq_method, aq->aq_method_len, "HEAD");
	if (!*head_only && !admin_is(aq->aq_method, aq->aq_method_len,
	    "GET")) {
		(void)buf_addstr(body, "only GET and HEAD\n");
		return 405;
	}
	if (admin_is(aq->aq_path, aq->aq_path_len, "/metrics")) {
		*type = ADMIN_METRICS_TYPE;
		if (metrics_render(w, body) == -1) {
			log_warnx("metrics_port: /metrics is over %d bytes",
			    ADMIN_BODY_MAX);
			buf_reset(body);
			*type = ADMIN_TEXT_TYPE;
			(void)buf_addstr(body, "metrics too large\n");
			return 500;
		}
		return 200;
	}
	if (admin_is(aq->aq_path, aq->aq_path_len, "/healthz")) {
		/* the loop turned to answer: the process is alive */
		(void)buf_addstr(body, "ok\n");
		return 200;
	}
	if (admin_is(aq->aq_path, aq->aq_path_len, "/readyz")) {
		if ((why = worker_unready(w)) != NULL) {
			(void)buf_addstr(body, "not ready: ");
			(void)buf_addstr(body, why);
			(void)buf_addstr(body, "\n");
			return 503;
		}
		(void)buf_addstr(body, "ready\n");
		return 200;
	}
	(void)buf_addstr(body, "not found: try /metrics, /healthz or "
	    "/readyz\n");
	return 404;
}

/* Build the whole response, then write what the socket takes now. */
static void
admin_answer(struct admin_conn *ac, int status,
    const struct admin_request *aq)
{
	struct buf	 body = BUF_INITIALIZER(ADMIN_BODY_MAX);
	const char	*type = ADMIN_TEXT_TYPE;
	int		 head_only = 0;

	if (status == 200)
		status = admin_route(ac, aq, &body, &type, &head_only);
	else
		(void)buf_addstr(&body, status == 431 ?
		    "request head too large\n" : "bad request line (only "
		    "GET or HEAD of /metrics, /healthz or /readyz)\n");
	if (admin_response(ac, status, type, &body, head_only) == -1) {
		log_warnx("metrics_port: out of memory");
		buf_free(&body);
		admin_conn_free(ac);
		return;
	}
	buf_free(&body);
	ev_io_stop(ac->ac_admin->a_worker->w_loop, &ac->ac_io);
	ev_io_init(&ac->ac_io, admin_write_cb, ac->ac_fd, EV_WRITE);
	ac->ac_io.data = ac;
	admin_write_cb(ac->ac_admin->a_worker->w_loop, &ac->ac_io, EV_WRITE);
}

static void
admin_read_cb(EV_P_ ev_io *io, int revents)
{
	struct admin_conn	*ac = io->data;
	struct admin_request	 aq;
	size_t			 avail;
	ssize_t			 n;
	int			 status;
	char			*p;

	if ((p = buf_space(&ac->ac_in, 1024, &avail)) == NULL) {
		admin_answer(ac, 431, NULL);
		return;
	}
	if ((n = read(ac->ac_fd, p, avail)) == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		admin_conn_free(ac);
		return;
	}
	if (n == 0) {
		admin_conn_free(ac);
		return;
	}
	buf_commit(&ac->ac_in, (size_t)n);
	if ((status = admin_parse(ac->ac_in.b_data, ac->ac_in.b_len,
	    ADMIN_HEAD_MAX, &aq)) != 0)
		admin_answer(ac, status, &aq);
}

static void
admin_write_cb(EV_P_ ev_io *io, int revents)
{
	struct admin_conn	*ac = io->data;
	int			 err;

	ac->ac_off += net_write(ac->ac_fd, ac->ac_out.b_data + ac->ac_off,
	    ac->ac_out.b_len - ac->ac_off, &err);
	if (err != 0) {
		admin_conn_free(ac);
		return;
	}
	if (ac->ac_off < ac->ac_out.b_len) {
		ev_io_start(EV_A, io);
		return;
	}
	/*
	 * All out.  Closing with unread input would send a reset that can
	 * destroy the response at the client: end our side and read what
	 * comes until its FIN, briefly.
	 */
	ev_io_stop(EV_A, io);
	buf_free(&ac->ac_out);
	if (shutdown(ac->ac_fd, SHUT_WR) == -1) {
		admin_conn_free(ac);
		return;
	}
	ev_io_init(&ac->ac_io, admin_linger_cb, ac->ac_fd, EV_READ);
	ac->ac_io.data = ac;
	ev_io_start(EV_A, &ac->ac_io);
	ev_timer_stop(EV_A, &ac->ac_timer);
	ev_timer_set(&ac->ac_timer, ADMIN_LINGER, 0.);
	ev_timer_start(EV_A, &ac->ac_timer);
}

static void
admin_linger_cb(EV_P_ ev_io *io, int revents)
{
	struct admin_conn	*ac = io->data;

	if (net_drain(ac->ac_fd) == -1)
		admin_conn_free(ac);
}

static void
admin_timer_cb(EV_P_ ev_timer *t, int revents)
{
	admin_conn_free(t->data);
}
