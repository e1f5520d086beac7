/* forward.c: plain-HTTP forwarding: a request and its response at a time, keep-alive, the server connection pool */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "connectd.h"
#include "net.h"
#include "hash.h"

/*
 * The second relay mode, beside relay.c's tunnel.  Once conn.c has a
 * request head for http://host/path, a decision and a server connection,
 * this file moves one exchange: the rewritten request head and the
 * request body up, the response head (rewritten) and body down, each
 * body framed as it passes (httpmsg.c) so that the connection can carry
 * the next request.  Nothing is cached.  When the exchange ends the
 * record is handed to conn.c (conn_forward_done()), which logs it and
 * reads the next request or closes.
 *
 * RFC 9110 7.6 and RFC 9112 9.6: hop-by-hop fields (Connection and what
 * it names, Keep-Alive, Proxy-Connection, TE, Upgrade,
 * Proxy-Authorization) are not passed on; Via gets "1.1 connectd"; the
 * request goes out as HTTP/1.1 in origin-form with the URL's Host.
 */

#define FWD_HEAD_MAX		(64 * 1024)	/* a response head */
#define FWD_VIA			"1.1 connectd"
#define FWD_CONN_NAMES		16		/* fields Connection may name */
#define PCONN_MAX		256		/* idle server connections */

enum fwd_state {
	FWD_HEAD,		/* reading the response head */
	FWD_BODY,		/* passing the response body on */
	FWD_DONE
};

struct fwd {
	enum fwd_state		 f_state;
	struct buf		 f_toserver;	/* what the server has not taken */
	struct buf		 f_toclient;	/* what the client has not taken */
	struct buf		 f_rhead;	/* the response head arriving */
	size_t			 f_rscan;
	struct http_body	 f_req;		/* the request body's framing */
	struct http_body	 f_resp;	/* the response body's framing */
	int			 f_req_done;
	int			 f_head;	/* a HEAD request */
	int			 f_client10;	/* an HTTP/1.0 client */
	int			 f_client_close; /* close the client after */
	int			 f_server_close; /* do not pool the server */
	int			 f_reused;	/* the server came from the pool */
	int			 f_retry;	/* may be sent again, once */
	int			 f_replied;	/* bytes of a response went out */
	uint64_t		 f_from_server;	/* response bytes read */
	char			*f_key;		/* "host:port", the pool's key */
	struct buf		 f_next;	/* bytes after the request */
	struct buf		 f_head_copy;	/* the request head, for a retry */
};

/* An idle server connection, kept for the next request to its host:port. */
struct pconn {
	struct hnode		 pc_node;
	struct worker		*pc_worker;
	char			*pc_key;
	int			 pc_fd;
	struct sockaddr_storage	 pc_addr;
	ev_io			 pc_io;		/* readable: it closed or talks */
	ev_timer		 pc_timer;	/* server_idle_pconn_timeout */
	TAILQ_ENTRY(pconn)	 pc_entry;	/* oldest first */
};

struct pconn_pool {
	struct htab		 pp_table;
	TAILQ_HEAD(, pconn)	 pp_lru;
	size_t			 pp_n;
};

static void	forward_up(struct conn *);
static void	forward_down(struct conn *);
static void	fwd_down(struct conn *, int);

/* --------------------------------------------------------- request head */

/* A field line's name and value, without OWS. */
static size_t
fwd_field(const char *p, size_t n, const char **v, size_t *vl)
{
	const char	*colon = memchr(p, ':', n);
	size_t		 e;

	for (*v = colon + 1; *v < p + n && (**v == ' ' || **v == '\t'); (*v)++)
		;
	for (e = (size_t)(p + n - *v); e > 0 && ((*v)[e - 1] == ' ' ||
	    (*v)[e - 1] == '\t'); e--)
		;
	*vl = e;
	return (size_t)(colon - p);
}

static int
fwd_name_is(const char *p, size_t n, const char *name)
{
	return n == strlen(name) && strncasecmp(p, name, n) == 0;
}

/* Hop-by-hop, or ours to set: never passed on as it came. */
static int
fwd_hop(const char *p, size_t n)
{
	static const char *const hop[] = { "Connection", "Proxy-Connection",
	    "Keep-Alive", "TE", "Upgrade", "Proxy-Authorization",
	    "Proxy-Authenticate", "Transfer-Encoding", "Host", "Via",
	    "Trailer" };
	size_t	 i;

	for (i = 0; i < nitems(hop); i++)
		if (fwd_name_is(p, n, hop[i]))
			return 1;
	return 0;
}

/*
 * Fields that a Connection field of these lines names (RFC 9110 7.6.1):
 * up to FWD_CONN_NAMES, as (pointer, length) into the lines.
 */
static size_t
fwd_conn_names(const char *const *lines, const size_t *lens, size_t nlines,
    const char **names, size_t *nlens)
{
	const char	*v;
	size_t		 i, j, vl, name, s, n = 0;

	for (i = 0; i < nlines; i++) {
		name = fwd_field(lines[i], lens[i], &v, &vl);
		if (!fwd_name_is(lines[i], name, "Connection") &&
		    !fwd_name_is(lines[i], name, "Proxy-Connection"))
			continue;
		for (j = 0; j < vl && n < FWD_CONN_NAMES; ) {
			while (j < vl && (v[j] == ',' || v[j] == ' ' ||
			    v[j] == '\t'))
				j++;
			for (s = j; j < vl && v[j] != ',' && v[j] != ' ' &&
			    v[j] != '\t'; j++)
				;
			if (j > s) {
				names[n] = v + s;
				nlens[n++] = j - s;
			}
		}
	}
	return n;
}

/*
 * The head lines[0..nlines) of a message with what a proxy must change:
 * hop-by-hop fields out, Via appended to.  Writes each kept line and
 * the Via line into b.
 */
static int
fwd_fields(struct buf *b, const char *const *lines, const size_t *lens,
    size_t nlines)
{
	const char	*names[FWD_CONN_NAMES], *v;
	size_t		 nlens[FWD_CONN_NAMES], nn, i, k, name, vl;
	int		 via = 0, skip;

	nn = fwd_conn_names(lines, lens, nlines, names, nlens);
	for (i = 0; i < nlines; i++) {
		name = fwd_field(lines[i], lens[i], &v, &vl);
		if (fwd_name_is(lines[i], name, "Via")) {
			/* the values of every Via line, in order, then ours */
			if (buf_addstr(b, via ? ", " : "Via: ") == -1 ||
			    buf_add(b, v, vl) == -1)
				return -1;
			via = 1;
			continue;
		}
		skip = fwd_hop(lines[i], name);
		for (k = 0; k < nn && !skip; k++)
			skip = name == nlens[k] && strncasecmp(lines[i],
			    names[k], name) == 0;
		if (skip)
			continue;
		if (via && buf_addstr(b, ", " FWD_VIA "\r\n") == -1)
			return -1;
		via = via ? 2 : 0;
		if (buf_add(b, lines[i], lens[i]) == -1 ||
		    buf_addstr(b, "\r\n") == -1)
			return -1;
	}
	if (via == 1)
		return buf_addstr(b, ", " FWD_VIA "\r\n");
	return buf_addstr(b, via == 2 ? "" : "Via: " FWD_VIA "\r\n");
}

/*
 * Make ready to forward the request whose head is head[0..len), as
 * st and req describe it: the rewritten head goes into the connection's
 * fwd, the body's framing is set, and the record gets the URL.  Returns
 * 0, or -1 when out of memory (the caller answers 500).
 */
int
forward_prepare(struct conn *c, const struct http_request *req,
    const char *head, const struct http_head *st)
{
	const char	*lines[HTTP_HEADERS_MAX];
	size_t		 lens[HTTP_HEADERS_MAX], i;
	struct fwd	*f;
	struct buf	*b;
	char		 port[16];
	int		 v6;

	if ((f = c->c_fwd) == NULL) {
		if ((f = c->c_fwd = calloc(1, sizeof(*f))) == NULL)
			return -1;
		buf_init(&f->f_rhead, FWD_HEAD_MAX);
	}
	/* the next request on the connection reuses the buffers */
	buf_reset(&f->f_toserver);
	buf_reset(&f->f_toclient);
	buf_reset(&f->f_rhead);
	buf_reset(&f->f_next);
	f->f_rscan = 0;
	f->f_state = FWD_HEAD;
	f->f_req_done = 0;
	f->f_reused = f->f_replied = 0;
	f->f_from_server = 0;
	f->f_server_close = 0;
	f->f_head = req->hr_method_len == 4 &&
	    memcmp(req->hr_method, "HEAD", 4) == 0;
	f->f_client10 = req->hr_version == 10;
	f->f_client_close = req->hr_close;
	httpmsg_body_init(&f->f_req, req->hr_chunked ? HTTP_BODY_CHUNKED :
	    req->hr_clen > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE,
	    req->hr_clen);
	f->f_req_done = f->f_req.hb_done;
	/* a request without a body may go again on a fresh connection */
	f->f_retry = f->f_req.hb_done;

	v6 = memchr(req->hr_host, ':', req->hr_host_len) != NULL;
	/* ":port", by hand: this runs for every request */
	port[0] = ':';
	port[1 + fmt_u64(port + 1, req->hr_port)] = '\0';
	free(f->f_key);
	if ((f->f_key = malloc(req->hr_host_len + sizeof(port) + 2)) == NULL)
		return -1;
	for (i = 0; i < req->hr_host_len; i++)
		f->f_key[i] = (char)tolower((unsigned char)req->hr_host[i]);
	memcpy(f->f_key + i, port, strlen(port) + 1);

	/* METHOD SP origin-form SP HTTP/1.1, then Host, then the rest */
	b = &f->f_toserver;
	if (buf_add(b, req->hr_method, req->hr_method_len) == -1 ||
	    buf_addc(b, ' ') == -1 ||
	    ((req->hr_path_len == 0 || req->hr_path[0] != '/') &&
	    buf_addc(b, '/') == -1) ||
	    buf_add(b, req->hr_path, req->hr_path_len) == -1 ||
	    buf_addstr(b, " HTTP/1.1\r\nHost: ") == -1 ||
	    (v6 && buf_addc(b, '[') == -1) ||
	    buf_add(b, req->hr_host, req->hr_host_len) == -1 ||
	    (v6 && buf_addc(b, ']') == -1) ||
	    (req->hr_port != 80 && buf_addstr(b, port) == -1) ||
	    buf_addstr(b, "\r\n") == -1)
		return -1;
	for (i = 0; i < st->hh_nheaders; i++) {
		lines[i] = head + st->hh_lines[i].hf_off;
		lens[i] = st->hh_lines[i].hf_len;
	}
	if (fwd_fields(b, lines, lens, st->hh_nheaders) == -1 ||
	    (req->hr_chunked &&
	    buf_addstr(b, "Transfer-Encoding: chunked\r\n") == -1) ||
	    buf_addstr(b, "\r\n") == -1)
		return -1;
	/* kept for one retry on a fresh connection */
	buf_reset(&f->f_head_copy);
	if (f->f_retry && buf_add(&f->f_head_copy, b->b_data, b->b_len) == -1)
		f->f_retry = 0;
	return 0;
}

/* ----------------------------------------------------------- the pool */

static int
pconn_match(const struct hnode *n, const void *key)
{
	return strcmp(container_of(n, struct pconn, pc_node)->pc_key,
	    key) == 0;
}

static void
pconn_free(struct pconn *pc)
{
	struct pconn_pool	*pp = pc->pc_worker->w_pconns;

	ev_io_stop(pc->pc_worker->w_loop, &pc->pc_io);
	ev_timer_stop(pc->pc_worker->w_loop, &pc->pc_timer);
	htab_remove(&pp->pp_table, &pc->pc_node);
	TAILQ_REMOVE(&pp->pp_lru, pc, pc_entry);
	pp->pp_n--;
	if (pc->pc_fd != -1)
		close(pc->pc_fd);
	free(pc->pc_key);
	free(pc);
}

/* Readable while idle: the server closed, or says what it should not. */
static void
pconn_io_cb(EV_P_ ev_io *io, int revents)
{
	pconn_free(io->data);
}

static void
pconn_timer_cb(EV_P_ ev_timer *t, int revents)
{
	pconn_free(t->data);
}

/* Keep fd, connected to addr for key, for a later request; else close. */
static void
pconn_put(struct worker *w, const char *key, int fd,
    const struct sockaddr_storage *addr)
{
	struct pconn_pool	*pp = w->w_pconns;
	struct pconn		*pc;
	double			 idle = w->w_conf->c_server_idle_pconn_timeout;

	if (idle <= 0. || w->w_stopping) {
		close(fd);
		return;
	}
	if (pp == NULL) {
		if ((pp = calloc(1, sizeof(*pp))) == NULL ||
		    htab_init(&pp->pp_table, 64) == -1) {
			free(pp);
			close(fd);
			return;
		}
		TAILQ_INIT(&pp->pp_lru);
		w->w_pconns = pp;
	}
	if (pp->pp_n >= PCONN_MAX)
		pconn_free(TAILQ_FIRST(&pp->pp_lru));
	if ((pc = calloc(1, sizeof(*pc))) == NULL ||
	    (pc->pc_key = strdup(key)) == NULL) {
		free(pc);
		close(fd);
		return;
	}
	pc->pc_worker = w;
	pc->pc_fd = fd;
	pc->pc_addr = *addr;
	ev_io_init(&pc->pc_io, pconn_io_cb, fd, EV_READ);
	pc->pc_io.data = pc;
	ev_timer_init(&pc->pc_timer, pconn_timer_cb, idle, 0.);
	pc->pc_timer.data = pc;
	ev_io_start(w->w_loop, &pc->pc_io);
	ev_timer_start(w->w_loop, &pc->pc_timer);
	htab_insert(&pp->pp_table, &pc->pc_node,
	    hash_bytes(key, strlen(key)));
	TAILQ_INSERT_TAIL(&pp->pp_lru, pc, pc_entry);
	pp->pp_n++;
}

/*
 * An idle connection to the request's host:port, taken out of the pool:
 * its descriptor, its address into *addr; -1 if there is none.
 */
int
forward_pool_take(struct conn *c, struct sockaddr_storage *addr)
{
	struct pconn_pool	*pp = c->c_worker->w_pconns;
	struct hnode		*n;
	struct pconn		*pc;
	int			 fd;

	if (pp == NULL || c->c_fwd == NULL || (n = htab_find(&pp->pp_table,
	    hash_bytes(c->c_fwd->f_key, strlen(c->c_fwd->f_key)),
	    pconn_match, c->c_fwd->f_key)) == NULL)
		return -1;
	pc = container_of(n, struct pconn, pc_node);
	fd = pc->pc_fd;
	*addr = pc->pc_addr;
	pc->pc_fd = -1;
	pconn_free(pc);
	c->c_fwd->f_reused = 1;
	return fd;
}

/* At exit: close every idle server connection. */
void
forward_pool_free(struct worker *w)
{
	struct pconn_pool	*pp = w->w_pconns;

	if (pp == NULL)
		return;
	while (!TAILQ_EMPTY(&pp->pp_lru))
		pconn_free(TAILQ_FIRST(&pp->pp_lru));
	htab_free(&pp->pp_table);
	free(pp);
	w->w_pconns = NULL;
}

/* ----------------------------------------------------------- the relay */

/*
 * Write what the peer takes of data; keep the rest in pending.  Behind
 * bytes already pending, data waits its turn: it is only appended.
 * Returns 0, or -1 with errno if the peer is gone.
 */
static int
fwd_send(int fd, struct buf *pending, const char *data, size_t len,
    uint64_t *count)
{
	size_t	 off;
	int	 err;

	if (pending->b_len > 0) {
		if (buf_add(pending, data, len) == -1) {
			errno = ENOMEM;
			return -1;
		}
		return 0;
	}
	off = net_write(fd, data, len, &err);
	if (count != NULL)
		*count += off;
	if (err != 0) {
		errno = err;
		return -1;
	}
	if (off < len && buf_add(pending, data + off, len - off) == -1)
		return -1;
	return 0;
}

/* Flush pending to fd; 1 if it is empty now, 0 if not, -1 on error. */
static int
fwd_flush(int fd, struct buf *pending, uint64_t *count)
{
	size_t	 n;
	int	 err;

	n = net_write(fd, pending->b_data, pending->b_len, &err);
	if (count != NULL)
		*count += n;
	buf_drop(pending, n);
	if (err != 0) {
		errno = err;
		return -1;
	}
	return pending->b_len == 0;
}

/*
 * The exchange failed.  Before any byte of a response went to the
 * client it gets an error reply; after, the connection just closes.
 */
static void
fwd_fail(struct conn *c, int status, enum close_reason reason,
    const char *detail)
{
	if (!c->c_fwd->f_replied) {
		conn_fail(c, status, reason, detail);
		return;
	}
	if (detail != NULL) {
		free(c->c_rec->lr_detail);
		c->c_rec->lr_detail = strdup(detail);
	}
	conn_close(c, reason);
}

/* Start watching what each side's state asks for. */
static void
fwd_watch(struct conn *c)
{
	struct ev_loop	*loop = c->c_worker->w_loop;
	struct fwd	*f = c->c_fwd;

	if (f->f_toserver.b_len > 0) {
		ev_io_start(loop, &c->c_swrite);
		ev_io_stop(loop, &c->c_cread);
	} else {
		ev_io_stop(loop, &c->c_swrite);
		if (!f->f_req_done && c->c_up == NULL)
			ev_io_start(loop, &c->c_cread);
		else
			ev_io_stop(loop, &c->c_cread);
	}
	if (f->f_toclient.b_len > 0) {
		ev_io_start(loop, &c->c_cwrite);
		ev_io_stop(loop, &c->c_sread);
	} else {
		ev_io_stop(loop, &c->c_cwrite);
		if (f->f_state != FWD_DONE)
			ev_io_start(loop, &c->c_sread);
		else
			ev_io_stop(loop, &c->c_sread);
	}
}

/* Request bytes data[0..n) from the client: the body's part goes up. */
static int
fwd_up_bytes(struct conn *c, const char *data, size_t n)
{
	struct fwd	*f = c->c_fwd;
	ssize_t		 k;

	if ((k = httpmsg_body(&f->f_req, data, n)) == -1) {
		fwd_fail(c, 400, CLOSE_BAD_REQUEST, "bad chunked request body");
		return -1;
	}
	c->c_rec->lr_bytes_up += (uint64_t)k;
	if (k > 0 && fwd_send(c->c_sfd, &f->f_toserver, data, (size_t)k,
	    NULL) == -1) {
		fwd_fail(c, 502, CLOSE_SERVER_RESET, strerror(errno));
		return -1;
	}
	if ((size_t)k < n && buf_add(&f->f_next, data + k, n - (size_t)k) == -1) {
		fwd_fail(c, 500, CLOSE_BAD_REQUEST, "out of memory");
		return -1;
	}
	f->f_req_done = f->f_req.hb_done;
	return 0;
}

/* Client to server: the rewritten head, then the body as it comes. */
static void
forward_up(struct conn *c)
{
	struct worker		*w = c->c_worker;
	struct fwd		*f = c->c_fwd;
	struct relay_buf	*up;
	ssize_t			 n;
	int			 rv;

	/* what came with the head joins it, for one write */
	if ((up = c->c_up) != NULL && !f->f_req_done) {
		c->c_up = NULL;
		rv = fwd_up_bytes(c, up->rb_data + up->rb_off,
		    up->rb_len - up->rb_off);
		free(up);
		if (rv == -1)
			return;
	}
	if ((rv = fwd_flush(c->c_sfd, &f->f_toserver, NULL)) == -1) {
		fwd_down(c, -1);
		return;
	}
	while (rv == 1 && !f->f_req_done) {
		n = read(c->c_cfd, w->w_scratch, w->w_scratch_len);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			/* the client went away in the middle of it */
			conn_close(c, n == 0 ? CLOSE_CLIENT_EOF :
			    CLOSE_CLIENT_RESET);
			return;
		}
		c->c_activity = ev_now(w->w_loop);
		if (fwd_up_bytes(c, w->w_scratch, (size_t)n) == -1)
			return;
		if ((rv = fwd_flush(c->c_sfd, &f->f_toserver, NULL)) == -1) {
			fwd_down(c, -1);
			return;
		}
	}
	fwd_watch(c);
}

/* ------------------------------------------------------------ response */

/*
 * The response head for the client: our own status line and version,
 * the fields without hop-by-hop ones, Via, and how the client's
 * connection goes on.
 */
static int
fwd_response_head(struct conn *c, const char *head,
    const struct http_response *rs, struct buf *b)
{
	struct fwd	*f = c->c_fwd;
	const char	*lines[HTTP_HEADERS_MAX], *p, *lf, *end = head +
			    rs->rs_head_len;
	size_t		 lens[HTTP_HEADERS_MAX], n = 0, len;

	/* the status line as the origin wrote it, but our version */
	if (buf_addstr(b, "HTTP/1.1") == -1 ||
	    buf_add(b, head + 8, rs->rs_line_len - 8) == -1 ||
	    buf_addstr(b, "\r\n") == -1)
		return -1;
	for (p = (const char *)memchr(head, '\n', rs->rs_head_len) + 1;
	    p < end && n < HTTP_HEADERS_MAX; p = lf + 1) {
		lf = memchr(p, '\n', (size_t)(end - p));
		len = (size_t)(lf - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len == 0)
			break;
		lines[n] = p;
		lens[n++] = len;
	}
	if (fwd_fields(b, lines, lens, n) == -1)
		return -1;
	if (rs->rs_body == HTTP_BODY_CHUNKED && !f->f_client10 &&
	    buf_addstr(b, "Transfer-Encoding: chunked\r\n") == -1)
		return -1;
	/* a body that ends with the connection ends the client's too */
	if (rs->rs_body == HTTP_BODY_CLOSE ||
	    (rs->rs_body == HTTP_BODY_CHUNKED && f->f_client10))
		f->f_client_close = 1;
	if (rs->rs_status >= 200 && buf_addstr(b, f->f_client_close ?
	    "Connection: close\r\n" : f->f_client10 ?
	    "Connection: keep-alive\r\n" : "") == -1)
		return -1;
	return buf_addstr(b, "\r\n");
}

/* Response body bytes data[0..n) from the server go to the client. */
static int
fwd_down_body(struct conn *c, const char *data, size_t n)
{
	struct fwd	*f = c->c_fwd;
	struct logrec	*r = c->c_rec;
	ssize_t		 k;
	size_t		 off = 0;

	while (off < n && !f->f_resp.hb_done) {
		if ((k = httpmsg_body(&f->f_resp, data + off, n - off)) ==
		    -1) {
			f->f_server_close = 1;
			fwd_fail(c, 502, CLOSE_SERVER_EOF,
			    "bad chunked response body");
			return -1;
		}
		if (f->f_resp.hb_data_len > 0 && fwd_send(c->c_cfd,
		    &f->f_toclient, data + off + (f->f_resp.hb_decode ?
		    f->f_resp.hb_data : 0), f->f_resp.hb_decode ?
		    f->f_resp.hb_data_len : (size_t)k, &r->lr_bytes_down) ==
		    -1) {
			conn_close(c, CLOSE_CLIENT_RESET);
			return -1;
		}
		off += (size_t)k;
		if (k == 0)
			break;
	}
	if (off < n)
		f->f_server_close = 1;	/* more than it said: do not reuse */
	if (f->f_resp.hb_done)
		f->f_state = FWD_DONE;
	return 0;
}

/* A complete head is in f_rhead: pass an interim one on, or the final. */
static int
fwd_down_head(struct conn *c)
{
	struct fwd		*f = c->c_fwd;
	struct logrec		*r = c->c_rec;
	struct http_response	 rs;
	size_t			 end, before;

	while (f->f_state == FWD_HEAD &&
	    (end = httpmsg_head_end(f->f_rhead.b_data, f->f_rhead.b_len,
	    &f->f_rscan)) > 0) {
		if (httpmsg_response(f->f_rhead.b_data, end, f->f_head,
		    &rs) == -1) {
			f->f_server_close = 1;
			fwd_fail(c, 502, CLOSE_SERVER_EOF, rs.rs_error);
			return -1;
		}
		if (rs.rs_status == 101) {
			f->f_server_close = 1;
			fwd_fail(c, 502, CLOSE_SERVER_EOF,
			    "the server switched protocols");
			return -1;
		}
		if (rs.rs_status < 200) {
			/* 100 Continue and the like go on as they are */
			f->f_replied = 1;
			if (fwd_send(c->c_cfd, &f->f_toclient,
			    f->f_rhead.b_data, end, &r->lr_bytes_down) == -1) {
				conn_close(c, CLOSE_CLIENT_RESET);
				return -1;
			}
			buf_drop(&f->f_rhead, end);
			f->f_rscan = 0;
			continue;
		}
		r->lr_http_status = rs.rs_status;
		r->lr_status = rs.rs_status;
		free(r->lr_content_type);
		r->lr_content_type = rs.rs_type != NULL ?
		    strndup(rs.rs_type, rs.rs_type_len) : NULL;
		if (rs.rs_close)
			f->f_server_close = 1;
		httpmsg_body_init(&f->f_resp, rs.rs_body, rs.rs_clen);
		f->f_resp.hb_decode = rs.rs_body == HTTP_BODY_CHUNKED &&
		    f->f_client10;
		/*
		 * The head waits in f_toclient for what came with it, so
		 * that both go in one write (forward_down flushes).
		 */
		before = f->f_toclient.b_len;
		if (fwd_response_head(c, f->f_rhead.b_data, &rs,
		    &f->f_toclient) == -1) {
			buf_truncate(&f->f_toclient, before);
			fwd_fail(c, 500, CLOSE_SERVER_EOF, "out of memory");
			return -1;
		}
		f->f_replied = 1;
		r->lr_reply_out = f->f_toclient.b_len - before;
		f->f_state = f->f_resp.hb_done ? FWD_DONE : FWD_BODY;
		buf_drop(&f->f_rhead, end);
		/* what came with the head is the body's */
		if (f->f_rhead.b_len > 0 && f->f_state == FWD_BODY &&
		    fwd_down_body(c, f->f_rhead.b_data, f->f_rhead.b_len) == -1)
			return -1;
		if (f->f_rhead.b_len > 0 && f->f_state == FWD_DONE &&
		    f->f_resp.hb_kind == HTTP_BODY_NONE)
			f->f_server_close = 1;
		buf_reset(&f->f_rhead);
	}
	if (f->f_state == FWD_HEAD && f->f_rhead.b_len >= FWD_HEAD_MAX) {
		f->f_server_close = 1;
		fwd_fail(c, 502, CLOSE_SERVER_EOF, "response head too large");
		return -1;
	}
	return 0;
}

/* Send the request again on a fresh connection: once, before any answer. */
static int
fwd_retry(struct conn *c)
{
	struct fwd	*f = c->c_fwd;

	if (!f->f_reused || !f->f_retry || f->f_from_server > 0)
		return -1;
	f->f_retry = 0;
	f->f_reused = 0;
	buf_reset(&f->f_toserver);
	if (buf_add(&f->f_toserver, f->f_head_copy.b_data,
	    f->f_head_copy.b_len) == -1)
		return -1;
	conn_forward_reconnect(c);
	return 0;
}

/* The server's side went away (error is 0 for EOF) or could not be written. */
static void
fwd_down(struct conn *c, int error)
{
	struct fwd	*f = c->c_fwd;
	enum close_reason reason = error == 0 ? CLOSE_SERVER_EOF :
			    CLOSE_SERVER_RESET;

	f->f_server_close = 1;
	if (f->f_state == FWD_HEAD) {
		if (fwd_retry(c) == 0)
			return;
		fwd_fail(c, 502, reason, "the server closed before its response");
		return;
	}
	if (f->f_state == FWD_BODY && error == 0 &&
	    f->f_resp.hb_kind == HTTP_BODY_CLOSE) {
		f->f_resp.hb_done = 1;
		f->f_state = FWD_DONE;
		return;
	}
	if (f->f_state == FWD_BODY) {
		/* cut short: the client sees the connection close */
		conn_close(c, reason);
	}
}

/* Server to client: interim and final heads, then the body. */
static void
forward_down(struct conn *c)
{
	struct worker	*w = c->c_worker;
	struct fwd	*f = c->c_fwd;
	char		*p;
	size_t		 avail;
	ssize_t		 n;
	int		 rv;

	if ((rv = fwd_flush(c->c_cfd, &f->f_toclient,
	    &c->c_rec->lr_bytes_down)) == -1) {
		conn_close(c, CLOSE_CLIENT_RESET);
		return;
	}
	while (rv == 1 && f->f_state != FWD_DONE) {
		if (f->f_state == FWD_HEAD) {
			if ((p = buf_space(&f->f_rhead, 16384, &avail)) ==
			    NULL) {
				fwd_fail(c, 502, CLOSE_SERVER_EOF,
				    "response head too large");
				return;
			}
		} else {
			p = w->w_scratch;
			avail = w->w_scratch_len;
		}
		n = read(c->c_sfd, p, avail);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			fwd_down(c, n == 0 ? 0 : errno);
			if (c->c_state != CONN_FORWARD)
				return;
			break;
		}
		c->c_activity = ev_now(w->w_loop);
		f->f_from_server += (uint64_t)n;
		if (f->f_state == FWD_HEAD) {
			buf_commit(&f->f_rhead, (size_t)n);
			if (fwd_down_head(c) == -1)
				return;
		} else if (fwd_down_body(c, p, (size_t)n) == -1)
			return;
		/* what this read left waiting (a head, short writes) goes now */
		if ((rv = fwd_flush(c->c_cfd, &f->f_toclient,
		    &c->c_rec->lr_bytes_down)) == -1) {
			conn_close(c, CLOSE_CLIENT_RESET);
			return;
		}
	}
	if (c->c_state != CONN_FORWARD)
		return;
	if (f->f_state == FWD_DONE && f->f_toclient.b_len == 0) {
		conn_forward_done(c, f->f_req_done && !f->f_client_close,
		    f->f_req_done && !f->f_server_close);
		return;
	}
	fwd_watch(c);
}

/* The client readable or the server writable: the request moves. */
static void
forward_up_cb(EV_P_ ev_io *io, int revents)
{
	forward_up(io->data);
}

/* The server readable or the client writable: the response moves. */
static void
forward_down_cb(EV_P_ ev_io *io, int revents)
{
	forward_down(io->data);
}

/*
 * The server is connected (conn.c's entry action for CONN_FORWARD): send
 * the request and pass the response back.
 */
void
forward_start(struct conn *c)
{
	conn_io_init(c, forward_up_cb, forward_down_cb, forward_down_cb,
	    forward_up_cb);
	forward_up(c);
	if (c->c_state == CONN_FORWARD)
		fwd_watch(c);
}

/* Has a response begun reaching the client? (for timeouts) */
int
forward_replied(const struct conn *c)
{
	return c->c_fwd != NULL && c->c_fwd->f_replied;
}

/*
 * The exchange is over: the server connection goes to the pool if it
 * may (pool set), else it is closed.  What the client sent after the
 * request goes into next, for the next request.
 */
void
forward_end(struct conn *c, int pool, struct buf *next)
{
	struct fwd	*f = c->c_fwd;

	if (c->c_sfd != -1) {
		ev_io_stop(c->c_worker->w_loop, &c->c_sread);
		ev_io_stop(c->c_worker->w_loop, &c->c_swrite);
		if (pool)
			pconn_put(c->c_worker, f->f_key, c->c_sfd,
			    &c->c_rec->lr_server);
		else
			close(c->c_sfd);
		c->c_sfd = -1;
	}
	if (next != NULL && f->f_next.b_len > 0)
		(void)buf_add(next, f->f_next.b_data, f->f_next.b_len);
	buf_reset(&f->f_next);
}

void
forward_free(struct conn *c)
{
	struct fwd	*f = c->c_fwd;

	if (f == NULL)
		return;
	buf_free(&f->f_toserver);
	buf_free(&f->f_toclient);
	buf_free(&f->f_rhead);
	buf_free(&f->f_next);
	buf_free(&f->f_head_copy);
	free(f->f_key);
	free(f);
	c->c_fwd = NULL;
}
