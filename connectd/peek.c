/* peek.c: read a tunnel's first bytes each way beside the relay (ClientHello, ServerHello), keep what the line needs */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>

#include "connectd.h"

/*
 * The tunnel never decrypts (issue 13, ../shared/notes/tls-peek.md): the
 * ClientHello and ServerHello that open a TLS stream are plaintext (RFC
 * 8446 4.1.2, 4.1.3), and relay.c hands a copy of what it forwards to
 * peek_feed(), after the write, from the bytes it read anyway.  Nothing
 * waits for this file: bytes are never held, and the server may speak
 * first (ssh, smtp).  The one exception is a hold (CONN_HOLD, set
 * by relay.c when a rule needs the hello): the client's bytes are
 * then kept, not forwarded, until this reader is done, and
 * peek_finish() tells conn_hello().
 *
 * A reader (lib/tlshello.h, about 700 bytes and its bounded buffer) is
 * allocated with the first bytes of its direction and freed as soon as
 * its result is final: the hello read or found bad, not TLS, the stream
 * ended, or tls_peek_timeout after its first byte.  What the line needs
 * is then copied to the record in compact form (struct logtls, of the
 * size it needs), so that a tunnel idle after its hello holds no reader.
 */

struct peek {
	struct tlshello		 pk_th;
	ev_tstamp		 pk_since;	/* its first byte */
};

static const int peek_flag[2] = { CONN_PEEKED_UP, CONN_PEEKED_DOWN };

/* ASCII only: a host name is compared as DNS does (RFC 4343), not by locale */
static int
peek_lower(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

/*
 * The SNI against the CONNECT host, as tls-peek.md says: a CONNECT to an
 * IP literal is ip_target (a name in it cannot be checked against an
 * address without DNS); ECH present is ech_outer, since the outer SNI
 * is the client-facing server's, not a mismatch (draft-ietf-tls-esni,
 * the outer ClientHello); no SNI is no_sni; else both names
 * case-folded and without a trailing dot, equal or not.  A mismatch is
 * how CDN domain fronting passes a host allow-list; step 3 of issue 13
 * makes it a rule.
 */
static enum peek_match
peek_match(const char *host, const struct tlshello *th)
{
	struct in6_addr	 a6;
	struct in_addr	 a4;
	size_t		 hl, sl, i;

	if (host == NULL)
		return PEEK_MATCH_NONE;
	if (inet_pton(AF_INET, host, &a4) == 1 ||
	    inet_pton(AF_INET6, host, &a6) == 1)
		return PEEK_MATCH_IP_TARGET;
	if (th->th_ech)
		return PEEK_MATCH_ECH_OUTER;
	if (!th->th_has_sni)
		return PEEK_MATCH_NO_SNI;
	if (th->th_sni_long)
		return PEEK_MATCH_MISMATCH;
	hl = strlen(host);
	sl = th->th_sni_len;
	if (hl > 0 && host[hl - 1] == '.')
		hl--;
	if (sl > 0 && th->th_sni[sl - 1] == '.')
		sl--;
	if (hl != sl)
		return PEEK_MATCH_MISMATCH;
	for (i = 0; i < hl; i++)
		if (peek_lower((unsigned char)host[i]) !=
		    peek_lower((unsigned char)th->th_sni[i]))
			return PEEK_MATCH_MISMATCH;
	return PEEK_MATCH_MATCH;
}

/* The record's logtls, made (without strings) if there is none; NULL: no memory */
static struct logtls *
peek_tls(struct logrec *r)
{
	if (r->lr_tls == NULL)
		r->lr_tls = calloc(1, sizeof(*r->lr_tls));
	return r->lr_tls;
}

/* A ClientHello's read is over: what the line says of it goes to r. */
static void
peek_client(struct logrec *r, const struct tlshello *th, enum peek_hello how)
{
	struct logtls	*t, *old = r->lr_tls;
	size_t		 sni = 0, alpn = 0;

	r->lr_proto = (uint8_t)th->th_proto;
	if (th->th_proto != TLSHELLO_PROTO_TLS)
		return;
	if (how == PEEK_HELLO_COMPLETE) {
		if (th->th_has_sni && !th->th_sni_long)
			sni = th->th_sni_len;
		alpn = th->th_alpn_len;
	}
	/* exactly the size it needs; a ServerHello read first is kept */
	if ((t = calloc(1, sizeof(*t) + sni + alpn)) == NULL)
		return;
	if (old != NULL) {
		t->lt_server = old->lt_server;
		t->lt_hrr = old->lt_hrr;
		t->lt_version = old->lt_version;
		t->lt_cipher = old->lt_cipher;
		free(old);
	}
	r->lr_tls = t;
	t->lt_hello = (uint8_t)how;
	/* what its header announced: a too_big hello says how big */
	t->lt_hello_bytes = (uint32_t)th->th_hello_bytes;
	if (how != PEEK_HELLO_COMPLETE)
		return;
	t->lt_match = (uint8_t)peek_match(r->lr_host, th);
	t->lt_ech = th->th_ech != 0;
	t->lt_pq = th->th_pq != 0;
	t->lt_has_sni = th->th_has_sni && !th->th_sni_long;
	t->lt_legacy = th->th_legacy_version;
	/*
	 * The versions offered: supported_versions (RFC 8446 4.2.1), GREASE
	 * removed by the reader; a client without it (TLS 1.2 and older)
	 * offers its legacy_version and everything below (RFC 5246 E.1),
	 * so that one is its list.
	 */
	if (th->th_nversions > 0) {
		t->lt_nversions = (uint8_t)th->th_nversions;
		memcpy(t->lt_versions, th->th_versions,
		    th->th_nversions * sizeof(th->th_versions[0]));
	} else {
		t->lt_nversions = 1;
		t->lt_versions[0] = th->th_legacy_version;
	}
	memcpy(t->lt_ja4, th->th_ja4, sizeof(t->lt_ja4));
	t->lt_ja4[TLSHELLO_JA4_LEN] = '\0';
	t->lt_sni_len = (uint16_t)sni;
	t->lt_alpn_len = (uint16_t)alpn;
	memcpy(t->lt_data, th->th_sni, sni);
	memcpy(t->lt_data + sni, th->th_alpn, alpn);
}

/*
 * A ServerHello (or HelloRetryRequest, which names the version and the
 * cipher suite the handshake goes on with: RFC 8446 4.1.4) was read.
 */
static void
peek_server(struct logrec *r, const struct tlshello *th)
{
	struct logtls	*t;

	if (th->th_status != TLSHELLO_DONE ||
	    th->th_proto != TLSHELLO_PROTO_TLS || (t = peek_tls(r)) == NULL)
		return;
	t->lt_server = 1;
	t->lt_hrr = th->th_hrr != 0;
	t->lt_version = th->th_version;
	t->lt_cipher = th->th_cipher;
}

/* dir's reader is done (how: for a client's, why it stopped): record and free it. */
static void
peek_finish(struct conn *c, int dir, enum peek_hello how)
{
	struct peek	*p = c->c_peek[dir];

	if (p == NULL)
		return;
	if (how == PEEK_HELLO_NONE)
		switch (p->pk_th.th_status) {
		case TLSHELLO_DONE:
			how = PEEK_HELLO_COMPLETE;
			break;
		case TLSHELLO_TOOBIG:
			how = PEEK_HELLO_TOOBIG;
			break;
		default:
			how = p->pk_th.th_truncated ? PEEK_HELLO_TRUNCATED :
			    PEEK_HELLO_MALFORMED;
			break;
		}
	if (c->c_rec != NULL) {
		if (dir == PEEK_UP)
			peek_client(c->c_rec, &p->pk_th, how);
		else
			peek_server(c->c_rec, &p->pk_th);
	}
	tlshello_release(&p->pk_th);
	free(p);
	c->c_peek[dir] = NULL;
	c->c_flags |= peek_flag[dir];
	/* last: it may close the connection */
	if (dir == PEEK_UP)
		conn_hello(c);
}

void
peek_start(struct conn *c)
{
	struct relay_buf	*b = c->c_up;

	if (!c->c_conf->c_tls_peek) {
		c->c_flags |= CONN_PEEKED_UP | CONN_PEEKED_DOWN;
		return;
	}
	/* a ClientHello pipelined after the CONNECT head goes up first */
	if (b != NULL && b->rb_len > b->rb_off)
		peek_feed(c, PEEK_UP, b->rb_data + b->rb_off,
		    b->rb_len - b->rb_off);
}

void
peek_feed(struct conn *c, int dir, const void *data, size_t len)
{
	struct peek		*p = c->c_peek[dir];
	enum tlshello_status	 st;

	if (p == NULL) {
		if ((c->c_flags & peek_flag[dir]) || len == 0)
			return;
		if ((p = malloc(sizeof(*p))) == NULL) {
			/* the line goes without: the relay must not */
			c->c_flags |= peek_flag[dir];
			if (dir == PEEK_UP)
				conn_hello(c);
			return;
		}
		tlshello_init(&p->pk_th, dir == PEEK_UP ? TLSHELLO_CLIENT :
		    TLSHELLO_SERVER);
		p->pk_since = ev_now(c->c_worker->w_loop);
		c->c_peek[dir] = p;
		/* the timer learns the new deadline */
		conn_timer_arm(c);
	}
	st = tlshello_feed(&p->pk_th, data, len);
	/* known early: an interim record may carry it before the end */
	if (dir == PEEK_UP && c->c_rec != NULL)
		c->c_rec->lr_proto = (uint8_t)p->pk_th.th_proto;
	if (st != TLSHELLO_MORE)
		peek_finish(c, dir, PEEK_HELLO_NONE);
}

ev_tstamp
peek_deadline(const struct conn *c)
{
	ev_tstamp	 d = 0., t;
	int		 i;

	for (i = 0; i < 2; i++) {
		if (c->c_peek[i] == NULL)
			continue;
		t = c->c_peek[i]->pk_since + c->c_conf->c_tls_peek_timeout;
		if (d == 0. || t < d)
			d = t;
	}
	return d;
}

int
peek_expire(struct conn *c, ev_tstamp now)
{
	int	 i, done = 0;

	for (i = 0; i < 2; i++) {
		if (c->c_peek[i] == NULL || c->c_peek[i]->pk_since +
		    c->c_conf->c_tls_peek_timeout > now)
			continue;
		(void)tlshello_end(&c->c_peek[i]->pk_th);
		peek_finish(c, i, c->c_peek[i]->pk_th.th_status ==
		    TLSHELLO_MALFORMED ? PEEK_HELLO_TIMEOUT : PEEK_HELLO_NONE);
		done = 1;
	}
	return done;
}

void
peek_eof(struct conn *c, int dir)
{
	if (c->c_peek[dir] == NULL)
		return;
	(void)tlshello_end(&c->c_peek[dir]->pk_th);
	peek_finish(c, dir, PEEK_HELLO_NONE);
}

void
peek_end(struct conn *c)
{
	peek_eof(c, PEEK_UP);
	peek_eof(c, PEEK_DOWN);
}
