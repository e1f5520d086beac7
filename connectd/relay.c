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
 */
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

static void
relay_read(struct conn *c, struct relay_dir *d)
{
	struct worker	*w = c->c_worker;
	ssize_t		 n;

	n = read(d->rd_from, w->w_scratch, w->w_scratch_len);
	if (n > 0) {
		c->c_activity = ev_now(w->w_loop);
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
	peek_start(c);

	if (c->c_down != NULL)
		ev_io_start(loop, &c->c_cwrite);
	else
		ev_io_start(loop, &c->c_sread);
	if (c->c_up != NULL)
		ev_io_start(loop, &c->c_swrite);
	else
		ev_io_start(loop, &c->c_cread);
}
