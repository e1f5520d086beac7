/* relay.c: move tunnel bytes both ways, with backpressure and half-close, by copy or splice(2) */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectd.h"
#include "net.h"

/*
 * Bytes are read into the worker's scratch buffer and written straight to
 * the other side.  Only what the other side cannot take right away is
 * copied into a buffer of the tunnel's own, and reading from the source
 * stops until that buffer is written out: an idle tunnel holds none.
 *
 * A hold (CONN_HOLD, issue 13 step 3): when an http_access line that
 * could change the answer needs the ClientHello (acl_check() said
 * ACL_HOLD), the client's bytes are appended to c_up without starting
 * its write watcher, and given to the hello reader, until the reader is
 * done and conn_hello() decides: relay_release() then writes them out
 * as any pending bytes, or the tunnel closes with nothing of them sent.
 * It is a flag within CONN_RELAY, not a state of its own: the server's
 * direction relays as usual meanwhile (a server may speak first), the
 * 200, the timers and the half-closes are the relay's, and only where
 * the client's bytes go differs; conn_go() still makes every state
 * change (a denial is conn_close()).  The hold is bounded by the
 * reader's own bounds (16 KiB, 64 records, tls_peek_timeout from the
 * first byte) and by RELAY_HOLD_MAX, past which the reader is ended.
 */
#define RELAY_HOLD_MAX	(32 * 1024)

/*
 * Bulk goes by splice(2) (relay_splice, relay_splice_min in
 * connectd.conf(5)): a direction that has carried relay_splice_min
 * bytes, whose hello reader is done (CONN_PEEKED_*: it needs the bytes
 * in user space) and while no hold keeps the client's bytes, moves them
 * socket -> pipe -> socket in the kernel, without the copy in and out
 * of the scratch buffer.  The pipe comes from the worker's pool and goes
 * back the moment it is empty again, so that a pipe is held only while
 * bytes sit in it: a tunnel whose destination cannot take them (the
 * backpressure case, as a relay_buf would be), or none at all.  An idle
 * tunnel holds no pipe, and the pool needs no more pipes than there are
 * blocked directions.  Pipes are sized to the scratch buffer
 * (F_SETPIPE_SZ), so that one splice moves what one read would; the
 * kernel may refuse it past pipe-user-pages-soft (pipe(7)) and the pipe
 * keeps its default size.  The pool is bounded by relay_splice_pipes:
 * with none to spare a read is a copy as before, and counted
 * (connectd_relay_pipe_pool_exhausted_total).  The copy path stays for
 * the first bytes, the pending bytes of the head and the 200, and the
 * hold.
 */
#define RELAY_SPLICE_FLAGS	(SPLICE_F_MOVE | SPLICE_F_NONBLOCK)

struct relay_dir {
	int			  rd_from;
	int			  rd_to;
	ev_io			 *rd_read;	/* readable on rd_from */
	ev_io			 *rd_write;	/* writable on rd_to */
	struct relay_buf	**rd_pending;
	uint64_t		 *rd_bytes;
	int			  rd_eof;	/* CONN_*_EOF for rd_from */
	int			  rd_shut;	/* CONN_*_SHUT for rd_to */
	enum close_reason	  rd_from_eof;
	enum close_reason	  rd_from_reset;
	enum close_reason	  rd_to_reset;
	int			  rd_peek;	/* PEEK_UP or PEEK_DOWN */
	int			  rd_peeked;	/* CONN_PEEKED_* for it */
	int			  rd_splice;	/* CONN_SPLICE_* for it */
	struct relay_pipe	**rd_pipe;
};

static void	relay_read(struct conn *, struct relay_dir *);
static void	relay_eof(struct conn *, struct relay_dir *);

static struct relay_dir
relay_up(struct conn *c)
{
	struct relay_dir d = {
		c->c_cfd, c->c_sfd, &c->c_cread, &c->c_swrite, &c->c_up,
		&c->c_rec->lr_bytes_up, CONN_CLIENT_EOF, CONN_SERVER_SHUT,
		CLOSE_CLIENT_EOF, CLOSE_CLIENT_RESET, CLOSE_SERVER_RESET,
		PEEK_UP, CONN_PEEKED_UP, CONN_SPLICE_UP, &c->c_pipe[PEEK_UP]
	};
	return d;
}

static struct relay_dir
relay_down(struct conn *c)
{
	struct relay_dir d = {
		c->c_sfd, c->c_cfd, &c->c_sread, &c->c_cwrite, &c->c_down,
		&c->c_rec->lr_bytes_down, CONN_SERVER_EOF, CONN_CLIENT_SHUT,
		CLOSE_SERVER_EOF, CLOSE_SERVER_RESET, CLOSE_CLIENT_RESET,
		PEEK_DOWN, CONN_PEEKED_DOWN, CONN_SPLICE_DOWN,
		&c->c_pipe[PEEK_DOWN]
	};
	return d;
}

/* ----------------------------------------------------------- pipe pool */

/*
 * An empty pipe from w's pool, or a new one while the pool is under its
 * bound; NULL when there is none to have (counted by the caller).
 */
static struct relay_pipe *
relay_pipe_get(struct worker *w)
{
	struct relay_pool	*pl = &w->w_pipes;
	struct relay_pipe	*p;

	if ((p = pl->rpl_free) != NULL) {
		pl->rpl_free = p->rp_next;
		pl->rpl_nfree--;
		pl->rpl_used++;
		return p;
	}
	if (pl->rpl_used >= w->w_conf->c_relay_splice_pipes ||
	    (p = malloc(sizeof(*p))) == NULL)
		return NULL;
	/* EMFILE here is the fd budget's: the tunnel copies instead */
	if (pipe2(p->rp_fd, O_NONBLOCK | O_CLOEXEC) == -1) {
		free(p);
		return NULL;
	}
	/* as much as one read of the scratch buffer; refused past
	 * pipe-user-pages-soft (pipe(7)): the default 64 KiB then does */
	(void)fcntl(p->rp_fd[1], F_SETPIPE_SZ, (int)w->w_scratch_len);
	p->rp_len = 0;
	p->rp_next = NULL;
	pl->rpl_used++;
	return p;
}

static void
relay_pipe_close(struct relay_pipe *p)
{
	close(p->rp_fd[0]);
	close(p->rp_fd[1]);
	free(p);
}

/*
 * A pipe back to the pool: kept if empty and the pool has room (its
 * bound may have shrunk with a reload), else closed, since bytes left in
 * it belong to a tunnel that is gone.
 */
static void
relay_pipe_put(struct worker *w, struct relay_pipe *p)
{
	struct relay_pool	*pl = &w->w_pipes;

	pl->rpl_used--;
	if (p->rp_len != 0 ||
	    pl->rpl_used + pl->rpl_nfree >= w->w_conf->c_relay_splice_pipes) {
		relay_pipe_close(p);
		return;
	}
	p->rp_next = pl->rpl_free;
	pl->rpl_free = p;
	pl->rpl_nfree++;
}

void
relay_pool_free(struct worker *w)
{
	struct relay_pipe	*p;

	while ((p = w->w_pipes.rpl_free) != NULL) {
		w->w_pipes.rpl_free = p->rp_next;
		relay_pipe_close(p);
	}
	w->w_pipes.rpl_nfree = 0;
}

void
relay_free_buffers(struct conn *c)
{
	int	 i;

	free(c->c_up);
	free(c->c_down);
	c->c_up = c->c_down = NULL;
	for (i = 0; i < 2; i++)
		if (c->c_pipe[i] != NULL) {
			relay_pipe_put(c->c_worker, c->c_pipe[i]);
			c->c_pipe[i] = NULL;
		}
}

/*
 * May d go by splice from now on?  relay_splice on, relay_splice_min
 * carried, its hello reader done and no hold: the one place that says
 * so (relay_start() and after each copied read).
 */
static void
relay_splice_check(struct conn *c, struct relay_dir *d)
{
	const struct conf	*cf = c->c_conf;

	if (cf->c_relay_splice && cf->c_relay_splice_pipes > 0 &&
	    (c->c_flags & d->rd_peeked) &&
	    !(c->c_flags & CONN_HOLD) && *d->rd_bytes >= cf->c_relay_splice_min)
		c->c_flags |= d->rd_splice;
}

/* Both sides have ended and everything is written: the tunnel is done. */
static int
relay_finished(struct conn *c)
{
	int	 all = CONN_CLIENT_EOF | CONN_SERVER_EOF;

	if ((c->c_flags & all) != all || c->c_up != NULL || c->c_down != NULL ||
	    c->c_pipe[0] != NULL || c->c_pipe[1] != NULL)
		return 0;
	conn_close(c, c->c_eof_reason);
	return 1;
}

/* The source ended and its bytes are all out: pass the FIN on. */
static int
relay_shut(struct conn *c, struct relay_dir *d)
{
	if (c->c_flags & d->rd_shut)
		return 0;
	c->c_flags |= d->rd_shut;
	if (shutdown(d->rd_to, SHUT_WR) == -1 && errno != ENOTCONN) {
		conn_close(c, d->rd_to_reset);
		return -1;
	}
	return relay_finished(c) ? -1 : 0;
}

/*
 * Write what we can of data to the destination; keep the rest.
 * Returns 0, or -1 when the connection was closed.
 */
static int
relay_write(struct conn *c, struct relay_dir *d, const char *data, size_t len)
{
	struct ev_loop		*loop = c->c_worker->w_loop;
	struct relay_buf	*b;
	size_t			 off;
	int			 err;

	off = net_write(d->rd_to, data, len, &err);
	*d->rd_bytes += off;
	if (err != 0) {
		conn_close(c, d->rd_to_reset);
		return -1;
	}
	if (off == len)
		return 0;
	if ((b = malloc(sizeof(*b) + (len - off))) == NULL) {
		conn_close(c, d->rd_to_reset);
		return -1;
	}
	memcpy(b->rb_data, data + off, len - off);
	b->rb_off = 0;
	b->rb_len = b->rb_cap = len - off;
	b->rb_reply = 0;
	*d->rd_pending = b;
	ev_io_stop(loop, d->rd_read);
	ev_io_start(loop, d->rd_write);
	return 0;
}

/*
 * Held client bytes: appended to c_up, not written.  Returns 0, or -1
 * when the connection was closed.
 */
static int
relay_hold(struct conn *c, const char *data, size_t len)
{
	struct relay_buf	*b = c->c_up, *nb;
	size_t			 have = b != NULL ? b->rb_len : 0;

	if (b == NULL || b->rb_cap - b->rb_len < len) {
		if ((nb = realloc(b, sizeof(*nb) + have + len)) == NULL) {
			conn_close(c, CLOSE_SERVER_RESET);
			return -1;
		}
		if (b == NULL) {
			nb->rb_off = nb->rb_len = 0;
			nb->rb_reply = 0;
		}
		nb->rb_cap = have + len;
		c->c_up = b = nb;
	}
	memcpy(b->rb_data + b->rb_len, data, len);
	b->rb_len += len;
	peek_feed(c, PEEK_UP, data, len);
	/* the reader's bounds end it first; this one is a backstop */
	if (c->c_state == CONN_RELAY && (c->c_flags & CONN_HOLD) &&
	    c->c_up != NULL && c->c_up->rb_len >= RELAY_HOLD_MAX) {
		peek_eof(c, PEEK_UP);
		if (c->c_state == CONN_RELAY && (c->c_flags & CONN_HOLD))
			conn_hello(c);
	}
	return c->c_state == CONN_RELAY ? 0 : -1;
}

void
relay_release(struct conn *c)
{
	struct ev_loop	*loop = c->c_worker->w_loop;

	c->c_flags &= ~CONN_HOLD;
	if (c->c_up == NULL)
		return;
	/* as any pending write: reading resumes once it is out */
	ev_io_stop(loop, &c->c_cread);
	ev_io_start(loop, &c->c_swrite);
}

static void
relay_read(struct conn *c, struct relay_dir *d)
{
	struct worker	*w = c->c_worker;
	ssize_t		 n;

	n = read(d->rd_from, w->w_scratch, w->w_scratch_len);
	if (n > 0) {
		c->c_activity = ev_now(w->w_loop);
		if (d->rd_peek == PEEK_UP && (c->c_flags & CONN_HOLD)) {
			(void)relay_hold(c, w->w_scratch, (size_t)n);
			return;
		}
		/*
		 * The bytes go first; the hello reader gets the same scratch
		 * bytes after, while it reads (peek.c): nothing waits for it.
		 */
		if (relay_write(c, d, w->w_scratch, (size_t)n) == -1)
			return;
		if ((c->c_flags & d->rd_peeked) == 0)
			peek_feed(c, d->rd_peek, w->w_scratch, (size_t)n);
		if (c->c_state == CONN_RELAY)
			relay_splice_check(c, d);
		return;
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == -1) {
		conn_close(c, d->rd_from_reset);
		return;
	}
	relay_eof(c, d);
}

/* The source ended: stop reading it, pass the FIN on once flushed. */
static void
relay_eof(struct conn *c, struct relay_dir *d)
{
	struct worker	*w = c->c_worker;

	ev_io_stop(w->w_loop, d->rd_read);
	peek_eof(c, d->rd_peek);
	/* a held client that ended, with or without a byte: decide now */
	if (d->rd_peek == PEEK_UP && (c->c_flags & CONN_HOLD) &&
	    c->c_state == CONN_RELAY) {
		c->c_flags |= CONN_PEEKED_UP;
		conn_hello(c);
	}
	if (c->c_state != CONN_RELAY)
		return;
	c->c_flags |= d->rd_eof;
	if (c->c_eof_reason == CLOSE_NONE) {
		c->c_eof_reason = d->rd_from_eof;
		c->c_half_since = ev_now(w->w_loop);
		conn_timer_arm(c);
	}
	if (*d->rd_pending == NULL && *d->rd_pipe == NULL)
		(void)relay_shut(c, d);
}

/*
 * The pipe's bytes to the destination.  All out: the pipe goes back,
 * and the source is read again (or, ended, its FIN passed on).  Not
 * all: the source is not read until the destination is writable.
 * Returns 0, or -1 when the connection was closed.
 */
static int
relay_splice_out(struct conn *c, struct relay_dir *d)
{
	struct worker		*w = c->c_worker;
	struct relay_pipe	*p = *d->rd_pipe;
	ssize_t			 n;

	while (p->rp_len > 0) {
		n = splice(p->rp_fd[0], NULL, d->rd_to, NULL, p->rp_len,
		    RELAY_SPLICE_FLAGS);
		if (n > 0) {
			p->rp_len -= (size_t)n;
			*d->rd_bytes += (size_t)n;
			w->w_pipes.rpl_bytes += (size_t)n;
			c->c_activity = ev_now(w->w_loop);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			/* backpressure: the pipe holds them, as a relay_buf
			 * would; nothing more is read meanwhile */
			if (!ev_is_active(d->rd_write)) {
				ev_io_stop(w->w_loop, d->rd_read);
				ev_io_start(w->w_loop, d->rd_write);
			}
			return 0;
		}
		/* EPIPE, ECONNRESET: the destination is gone, as in net_write */
		conn_close(c, d->rd_to_reset);
		return -1;
	}
	relay_pipe_put(w, p);
	*d->rd_pipe = NULL;
	if (ev_is_active(d->rd_write)) {
		ev_io_stop(w->w_loop, d->rd_write);
		if (!(c->c_flags & d->rd_eof))
			ev_io_start(w->w_loop, d->rd_read);
	}
	if (c->c_flags & d->rd_eof)
		return relay_shut(c, d);
	return 0;
}

/*
 * Readable, and d goes by splice: source -> pipe -> destination.  With
 * no pipe to have, this read is a copy.  EOF and errors are the copy
 * path's: the same close reasons (ECONNRESET is the source's reset).
 */
static void
relay_splice_in(struct conn *c, struct relay_dir *d)
{
	struct worker		*w = c->c_worker;
	struct relay_pipe	*p;
	ssize_t			 n;

	if ((p = relay_pipe_get(w)) == NULL) {
		w->w_pipes.rpl_exhausted++;
		relay_read(c, d);
		return;
	}
	*d->rd_pipe = p;
	n = splice(d->rd_from, NULL, p->rp_fd[1], NULL, w->w_scratch_len,
	    RELAY_SPLICE_FLAGS);
	if (n > 0) {
		p->rp_len = (size_t)n;
		c->c_activity = ev_now(w->w_loop);
		if (!(c->c_flags & CONN_SPLICED)) {
			c->c_flags |= CONN_SPLICED;
			w->w_pipes.rpl_tunnels++;
		}
		(void)relay_splice_out(c, d);
		return;
	}
	/* nothing in it: back at once, so that an idle tunnel holds none */
	relay_pipe_put(w, p);
	*d->rd_pipe = NULL;
	if (n == 0) {
		relay_eof(c, d);
		return;
	}
	if (errno == EINTR)
		return;
	/*
	 * Readable, yet nothing to splice: a spurious wakeup, or the read
	 * stopped at TCP urgent data (MSG_OOB), where tcp_splice_read()
	 * returns EAGAIN for as long as the mark is there while epoll says
	 * readable: a busy loop for one hostile byte.  read(2) steps over
	 * the urgent byte as the copy path always has (SO_OOBINLINE is
	 * off), so this read is a copy; it costs a system call only on
	 * such a wakeup.
	 */
	if (errno == EAGAIN) {
		relay_read(c, d);
		return;
	}
	if (errno == EINVAL || errno == ENOSYS) {
		/* a socket splice(2) does not take: copy from now on */
		c->c_flags &= ~d->rd_splice;
		relay_read(c, d);
		return;
	}
	conn_close(c, d->rd_from_reset);
}

static void
relay_flush(struct conn *c, struct relay_dir *d)
{
	struct ev_loop		*loop = c->c_worker->w_loop;
	struct relay_buf	*b = *d->rd_pending;
	size_t			 n, own;
	int			 err;

	n = net_write(d->rd_to, b->rb_data + b->rb_off, b->rb_len - b->rb_off,
	    &err);
	b->rb_off += n;
	/* the rest of a 200 that did not go at once is ours, not the tunnel's */
	own = n < b->rb_reply ? n : b->rb_reply;
	b->rb_reply -= own;
	c->c_rec->lr_reply_out += own;
	*d->rd_bytes += n - own;
	if (n > 0)
		c->c_activity = ev_now(loop);
	if (err != 0) {
		conn_close(c, d->rd_to_reset);
		return;
	}
	if (b->rb_off < b->rb_len)
		return;
	free(b);
	*d->rd_pending = NULL;
	ev_io_stop(loop, d->rd_write);
	if (c->c_flags & d->rd_eof)
		(void)relay_shut(c, d);
	else
		ev_io_start(loop, d->rd_read);
}

/* Readable: the client's socket carries bytes up, the server's down. */
static void
relay_read_cb(EV_P_ ev_io *io, int revents)
{
	struct conn		*c = io->data;
	struct relay_dir	 d = io == &c->c_cread ? relay_up(c) :
				    relay_down(c);

	if (c->c_flags & d.rd_splice)
		relay_splice_in(c, &d);
	else
		relay_read(c, &d);
}

/* Writable: the server takes what went up, the client what came down. */
static void
relay_write_cb(EV_P_ ev_io *io, int revents)
{
	struct conn		*c = io->data;
	struct relay_dir	 d = io == &c->c_swrite ? relay_up(c) :
				    relay_down(c);

	if (*d.rd_pipe != NULL)
		(void)relay_splice_out(c, &d);
	else
		relay_flush(c, &d);
}

/*
 * The 200 is sent (conn.c's entry action for CONN_RELAY): start relaying,
 * bytes pipelined after the head first, and the rest of the 200 before
 * anything from the server if the client's socket did not take it whole.
 */
void
relay_start(struct conn *c)
{
	struct ev_loop		*loop = c->c_worker->w_loop;
	struct relay_dir	 d;

	conn_io_init(c, relay_read_cb, relay_write_cb, relay_read_cb,
	    relay_write_cb);
	if (c->c_verdict == ACL_HOLD)
		c->c_flags |= CONN_HOLD;
	/* bytes pipelined after the head are held too; the reader may be
	 * done with them at once, and conn_hello() release or close */
	peek_start(c);
	if (c->c_state != CONN_RELAY)
		return;
	/* relay_splice_min 0 with tls_peek off: from the first byte */
	d = relay_up(c);
	relay_splice_check(c, &d);
	d = relay_down(c);
	relay_splice_check(c, &d);

	if (c->c_down != NULL)
		ev_io_start(loop, &c->c_cwrite);
	else
		ev_io_start(loop, &c->c_sread);
	if (c->c_up != NULL && !(c->c_flags & CONN_HOLD))
		ev_io_start(loop, &c->c_swrite);
	else
		ev_io_start(loop, &c->c_cread);
}
