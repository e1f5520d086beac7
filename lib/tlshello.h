/* tlshello.h: a passive, incremental reader of the first TLS hello of a stream, with JA4 (no daemon state) */
#ifndef TLSHELLO_H
#define TLSHELLO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/*
 * It reads a copy of what one side of a tunnel sends first, in any
 * chunks, and never decrypts: the ClientHello and ServerHello are
 * plaintext (RFC 8446 4.1.2, 4.1.3; RFC 5246 7.4.1.2).  It tells a TLS
 * stream from ssh, http and the rest, reassembles the hello across TCP
 * segments and TLS records within bounds, and keeps only the fields
 * below once it is done: its buffer is freed as soon as the status is
 * no longer TLSHELLO_MORE.
 */

#define TLSHELLO_MAX_BYTES	16384	/* of hello message (body), beyond: too big */
#define TLSHELLO_MAX_RECORDS	64	/* TLS records to carry it, beyond: too big */
#define TLSHELLO_SNI_MAX	255	/* a DNS name fits (RFC 1035 2.3.4) */
#define TLSHELLO_ALPN_MAX	256	/* bytes of the ALPN list kept */
#define TLSHELLO_VERSIONS_MAX	16	/* offered versions kept */
#define TLSHELLO_JA4_LEN	36	/* "t13d1516h2_8daaf6152771_e5627efa2ab1" */

enum tlshello_dir {
	TLSHELLO_CLIENT,	/* read a ClientHello, compute JA4 */
	TLSHELLO_SERVER,	/* read a ServerHello */
};

enum tlshello_status {
	TLSHELLO_MORE,		/* feed more bytes */
	TLSHELLO_DONE,		/* a whole hello was read: the fields are set */
	TLSHELLO_MALFORMED,	/* TLS, but not a well-formed hello (or cut short) */
	TLSHELLO_TOOBIG,	/* over TLSHELLO_MAX_BYTES or _RECORDS (or no memory) */
	TLSHELLO_NOTTLS,	/* the first bytes are not TLS: th_proto says what */
};

enum tlshello_proto {
	TLSHELLO_PROTO_NONE,	/* not known yet, or no bytes at all */
	TLSHELLO_PROTO_TLS,	/* a TLS record */
	TLSHELLO_PROTO_SSLV2,	/* an SSLv2-style ClientHello (RFC 5246 E.2), not read */
	TLSHELLO_PROTO_SSH,	/* "SSH-" (RFC 4253 4.2) */
	TLSHELLO_PROTO_HTTP,	/* an HTTP method and a space, or "HTTP/" */
	TLSHELLO_PROTO_UNKNOWN,	/* anything else */
};

struct tlshello {
	/* the results: th_proto once it is not NONE, the rest once DONE */
	enum tlshello_status th_status;
	enum tlshello_proto th_proto;
	int		 th_truncated;	/* MALFORMED by tlshello_end(): cut short */
	size_t		 th_hello_bytes; /* the hello message, its 4-byte header included */
	unsigned	 th_records;	/* TLS records read, the one ending it included */
	uint16_t	 th_legacy_version;

	/* ClientHello */
	int		 th_has_sni;	/* server_name (0x0000) present, even empty */
	int		 th_sni_long;	/* a host_name longer than TLSHELLO_SNI_MAX: not kept */
	size_t		 th_sni_len;	/* the first host_name, any bytes, NUL-terminated */
	char		 th_sni[TLSHELLO_SNI_MAX + 1];
	unsigned	 th_alpn_count;	/* ALPN values kept in th_alpn */
	int		 th_alpn_more;	/* some did not fit and were dropped */
	size_t		 th_alpn_len;	/* the values in wire format: length, bytes */
	uint8_t		 th_alpn[TLSHELLO_ALPN_MAX];
	unsigned	 th_nversions;	/* supported_versions (0x002b), GREASE removed */
	int		 th_versions_more;
	uint16_t	 th_versions[TLSHELLO_VERSIONS_MAX];
	int		 th_ech;	/* encrypted_client_hello (0xfe0d) present */
	int		 th_pq;		/* a post-quantum key share: offered / chosen */
	uint16_t	 th_pq_group;	/* the first such group */
	char		 th_ja4[TLSHELLO_JA4_LEN + 1]; /* "" if hashing failed */

	/*
	 * ClientHello: the highest version offered in supported_versions
	 * (JA4's), else legacy_version; ServerHello: the one negotiated,
	 * supported_versions' selected_version, else legacy_version.
	 */
	uint16_t	 th_version;

	/* ServerHello */
	uint16_t	 th_cipher;
	uint16_t	 th_group;	/* key_share's group (HRR: the one asked for); 0: none */
	int		 th_hrr;	/* a HelloRetryRequest (RFC 8446 4.1.3) */

	/*
	 * Optional, set by the caller before feeding: JA4_r (the unhashed
	 * lists) is appended here; the caller owns it and its bound.
	 */
	struct buf	*th_ja4_r;

	/* the reader's own state */
	enum tlshello_dir th_dir;
	uint8_t		 th_first[8];	/* the bytes that decide th_proto */
	size_t		 th_nfirst;
	uint8_t		 th_rhdr[5];	/* a record header being read */
	size_t		 th_nrhdr;
	size_t		 th_rleft;	/* bytes of the current record still to come */
	uint8_t		 th_hhdr[4];	/* the handshake header being read */
	size_t		 th_nhhdr;
	size_t		 th_msglen;	/* the hello's body, from its header */
	int		 th_msgdone;	/* read; waiting for its record to end */
	struct buf	 th_msg;	/* the body, bounded by TLSHELLO_MAX_BYTES */
};

/* An empty reader of what dir sends first.  It holds no memory yet. */
void	tlshello_init(struct tlshello *, enum tlshello_dir dir);

/*
 * Read the next len bytes of the stream (len may be 0).  Returns the
 * status, also kept in th_status: once it is not TLSHELLO_MORE it stays,
 * further bytes are ignored and the buffer is freed.  A hello is done
 * when the TLS record that ends it is complete; bytes after it are not
 * looked at.
 */
enum tlshello_status	tlshello_feed(struct tlshello *, const void *buf,
			    size_t len);

/*
 * The stream ended, or the caller gave up waiting.  A hello not yet
 * complete becomes TLSHELLO_MALFORMED with th_truncated set; a stream
 * too short to classify becomes TLSHELLO_NOTTLS (th_proto UNKNOWN, or
 * NONE if it sent nothing).  Frees the buffer; returns the status.
 */
enum tlshello_status	tlshello_end(struct tlshello *);

/* Free the buffer, whatever the status; the fields stay.  Idempotent. */
void	tlshello_release(struct tlshello *);

/*
 * The i-th ALPN value kept (i < th_alpn_count), its length in *len; a
 * pointer into the struct, not NUL-terminated.  NULL if there is none.
 */
const uint8_t	*tlshello_alpn(const struct tlshello *, unsigned i,
		    size_t *len);

/* 1 if v is a GREASE value (RFC 8701 2: 0x0a0a, 0x1a1a, ... 0xfafa). */
int	tlshello_grease(uint16_t v);

/* 1 if group is a post-quantum (ML-KEM or Kyber hybrid) named group. */
int	tlshello_pq_group(uint16_t group);

/* Names for logs: "more", "done", "malformed", "too_big", "not_tls". */
const char	*tlshello_status_name(enum tlshello_status);

/* "none", "tls", "sslv2", "ssh", "http", "unknown". */
const char	*tlshello_proto_name(enum tlshello_proto);

#endif
