/* relay.c: move tunnel bytes both ways, with backpressure and half-close */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
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
};

static struct relay_dir
relay_up(struct conn *c)
{
	struct relay_dir d = {
		c->c_cfd, c->c_sfd, &c->c_cread, &c->c_swrite, &c->c_up,
		&c->c_rec->lr_bytes_up, CONN_CLIENT_EOF, CONN_SERVER_SHUT,
		CLOSE_CLIENT_EOF, CLOSE_CLIENT_RESET, CLOSE_SERVER_RESET,
		PEEK_UP, CONN_PEEKED_UP
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
		PEEK_DOWN, CONN_PEEKED_DOWN
	};
	return d;
}

void
relay_free_buffers(struct conn *c)
{
	free(c->c_up);
	free(c->c_down);
	c->c_up = c->c_down = NULL;
}

/* Both sides have ended and everything is written: the tunnel is done. */
static int
relay_finished(struct conn *c)
{
	int	 all = CONN_CLIENT_EOF | CONN_SERVER_EOF;

	if ((c->c_flags & all) != all || c->c_up != NULL || c->c_down != NULL)
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
		if (relay_write(c, d, w->w_scratch, (size_t)n) == 0 &&
		    (c->c_flags & d->rd_peeked) == 0)
			peek_feed(c, d->rd_peek, w->w_scratch, (size_t)n);
		return;
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == -1) {
		conn_close(c, d->rd_from_reset);
		return;
	}
	/* EOF: stop reading this side, pass the FIN on once flushed */
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
	if (*d->rd_pending == NULL)
		(void)relay_shut(c, d);
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

	relay_read(c, &d);
}

/* Writable: the server takes what went up, the client what came down. */
static void
relay_write_cb(EV_P_ ev_io *io, int revents)
{
	struct conn		*c = io->data;
	struct relay_dir	 d = io == &c->c_swrite ? relay_up(c) :
				    relay_down(c);

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
	struct ev_loop	*loop = c->c_worker->w_loop;

	conn_io_init(c, relay_read_cb, relay_write_cb, relay_read_cb,
	    relay_write_cb);
	if (c->c_verdict == ACL_HOLD)
		c->c_flags |= CONN_HOLD;
	/* bytes pipelined after the head are held too; the reader may be
	 * done with them at once, and conn_hello() release or close */
	peek_start(c);
	if (c->c_state != CONN_RELAY)
		return;

	if (c->c_down != NULL)
		ev_io_start(loop, &c->c_cwrite);
	else
		ev_io_start(loop, &c->c_sread);
	if (c->c_up != NULL && !(c->c_flags & CONN_HOLD))
		ev_io_start(loop, &c->c_swrite);
	else
		ev_io_start(loop, &c->c_cread);
}
