/* tlshello.c: a passive, incremental reader of the first TLS hello of a stream, with JA4 (no daemon state) */
/*
 * Anet-style: no daemon state, no I/O, no logging; the caller feeds it a
 * copy of the bytes and forwards them itself, unchanged and undelayed.
 *
 * Three layers, each checking its lengths against its parent's:
 * classify() on the first bytes, rec_feed() on TLS records (RFC 8446
 * 5.1), hs_feed() on the handshake message, which is gathered in a
 * struct buf sized once from its header; parse_client_hello() and
 * parse_server_hello() then walk it with struct rd.  A hello is only
 * done when the record that ends it is whole: a record length that lies
 * is caught, and no field is set before that.  JA4 is FoxIO's (JA4.md,
 * BSD-3-Clause); the other JA4+ methods (JA4S, JA4H, JA4X...) are under
 * another license and are not here.  Its SHA-256 is OpenSSL's EVP.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"
#include "tlshello.h"
#include "util.h"

/* RFC 8446 5.1 ContentType, 4 HandshakeType, 4.2 ExtensionType */
#define CT_CHANGE_CIPHER_SPEC	20
#define CT_APPLICATION_DATA	23
#define CT_HANDSHAKE		22
#define HT_CLIENT_HELLO		1
#define HT_SERVER_HELLO		2
#define EXT_SERVER_NAME		0x0000	/* RFC 6066 3 */
#define EXT_SIGNATURE_ALGS	0x000d	/* RFC 8446 4.2.3 */
#define EXT_ALPN		0x0010	/* RFC 7301 3.1 */
#define EXT_SUPPORTED_VERSIONS	0x002b	/* RFC 8446 4.2.1 */
#define EXT_KEY_SHARE		0x0033	/* RFC 8446 4.2.8 */
#define EXT_ECH			0xfe0d	/* draft-ietf-tls-esni 11.1 */

/* RFC 8446 5.1: "The length MUST NOT exceed 2^14 bytes." */
#define RECORD_MAX		16384

/*
 * RFC 8446 4.1.3: a ServerHello with this random is a
 * HelloRetryRequest (SHA-256 of "HelloRetryRequest").
 */
static const uint8_t hrr_random[32] = {
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11,
	0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
	0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e,
	0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
};

int
tlshello_grease(uint16_t v)
{
	/* RFC 8701 2: {0x?A, 0x?A} with the same ? in both bytes */
	return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

int
tlshello_pq_group(uint16_t group)
{
	switch (group) {
	case 0x0200:	/* MLKEM512 (draft-ietf-tls-mlkem) */
	case 0x0201:	/* MLKEM768 */
	case 0x0202:	/* MLKEM1024 */
	case 0x11eb:	/* SecP256r1MLKEM768 (draft-ietf-tls-ecdhe-mlkem) */
	case 0x11ec:	/* X25519MLKEM768 */
	case 0x11ed:	/* SecP384r1MLKEM1024 */
	case 0x6399:	/* X25519Kyber768Draft00 (draft-tls-westerbaan-xyber768d00) */
	case 0x639a:	/* SecP256r1Kyber768Draft00 */
		return 1;
	}
	return 0;
}

const char *
tlshello_status_name(enum tlshello_status s)
{
	switch (s) {
	case TLSHELLO_MORE:		return "more";
	case TLSHELLO_DONE:		return "done";
	case TLSHELLO_MALFORMED:	return "malformed";
	case TLSHELLO_TOOBIG:		return "too_big";
	case TLSHELLO_NOTTLS:		return "not_tls";
	}
	return "unknown";
}

const char *
tlshello_proto_name(enum tlshello_proto p)
{
	switch (p) {
	case TLSHELLO_PROTO_NONE:	return "none";
	case TLSHELLO_PROTO_TLS:	return "tls";
	case TLSHELLO_PROTO_SSLV2:	return "sslv2";
	case TLSHELLO_PROTO_SSH:	return "ssh";
	case TLSHELLO_PROTO_HTTP:	return "http";
	case TLSHELLO_PROTO_UNKNOWN:	return "unknown";
	}
	return "unknown";
}

void
tlshello_init(struct tlshello *st, enum tlshello_dir dir)
{
	memset(st, 0, sizeof(*st));
	st->th_status = TLSHELLO_MORE;
	st->th_proto = TLSHELLO_PROTO_NONE;
	st->th_dir = dir;
	buf_init(&st->th_msg, TLSHELLO_MAX_BYTES);
}

void
tlshello_release(struct tlshello *st)
{
	buf_free(&st->th_msg);
}

const uint8_t *
tlshello_alpn(const struct tlshello *st, unsigned i, size_t *len)
{
	size_t	 off = 0;

	while (off < st->th_alpn_len) {
		if (i-- == 0) {
			*len = st->th_alpn[off];
			return st->th_alpn + off + 1;
		}
		off += 1 + st->th_alpn[off];
	}
	*len = 0;
	return NULL;
}

/* A terminal status: keep it, free the buffer. */
static enum tlshello_status
finish(struct tlshello *st, enum tlshello_status s)
{
	st->th_status = s;
	tlshello_release(st);
	return s;
}

/* ------------------------------------------------ classification */

/*
 * What the first n bytes are, or NONE while more could change it.  A TLS
 * record starts with a ContentType (20..23) and legacy_record_version
 * 3.x (RFC 8446 5.1); any of them counts as TLS here, so that a stream
 * that opens with, say, application data is a malformed TLS stream, not
 * an unknown protocol.  An SSLv2-style hello has a 2-byte length with
 * the high bit set, then msg_type 1 (RFC 5246 E.2).
 */
static const struct {
	const char		*tok;
	enum tlshello_proto	 proto;
} tokens[] = {
	{ "SSH-", TLSHELLO_PROTO_SSH },		/* RFC 4253 4.2 */
	/* RFC 9110 9.3, RFC 5789 (PATCH), RFC 9113 3.4 (the h2 preface) */
	{ "GET ", TLSHELLO_PROTO_HTTP },
	{ "HEAD ", TLSHELLO_PROTO_HTTP },
	{ "POST ", TLSHELLO_PROTO_HTTP },
	{ "PUT ", TLSHELLO_PROTO_HTTP },
	{ "DELETE ", TLSHELLO_PROTO_HTTP },
	{ "CONNECT ", TLSHELLO_PROTO_HTTP },
	{ "OPTIONS ", TLSHELLO_PROTO_HTTP },
	{ "TRACE ", TLSHELLO_PROTO_HTTP },
	{ "PATCH ", TLSHELLO_PROTO_HTTP },
	{ "PRI ", TLSHELLO_PROTO_HTTP },
	{ "HTTP/", TLSHELLO_PROTO_HTTP },	/* a server's status line */
};

static enum tlshello_proto
classify(const uint8_t *b, size_t n)
{
	size_t	 i, len;
	int	 maybe = 0;

	if (n == 0)
		return TLSHELLO_PROTO_NONE;
	if (b[0] >= CT_CHANGE_CIPHER_SPEC && b[0] <= CT_APPLICATION_DATA) {
		if (n < 2)
			return TLSHELLO_PROTO_NONE;
		if (b[1] != 3)
			return TLSHELLO_PROTO_UNKNOWN;
		if (n < 3)
			return TLSHELLO_PROTO_NONE;
		return b[2] <= 4 ? TLSHELLO_PROTO_TLS : TLSHELLO_PROTO_UNKNOWN;
	}
	if (b[0] & 0x80) {
		if (n < 3)
			return TLSHELLO_PROTO_NONE;
		if (b[2] == HT_CLIENT_HELLO)
			return TLSHELLO_PROTO_SSLV2;
		return TLSHELLO_PROTO_UNKNOWN;
	}
	for (i = 0; i < nitems(tokens); i++) {
		len = strlen(tokens[i].tok);
		if (n >= len && memcmp(b, tokens[i].tok, len) == 0)
			return tokens[i].proto;
		if (n < len && memcmp(b, tokens[i].tok, n) == 0)
			maybe = 1;
	}
	return maybe ? TLSHELLO_PROTO_NONE : TLSHELLO_PROTO_UNKNOWN;
}

/* ------------------------------------------------ reading the hello */

/* A cursor over bytes whose every length is checked against its parent. */
struct rd {
	const uint8_t	*p;
	size_t		 n;
};

static int
rd_u8(struct rd *r, unsigned *v)
{
	if (r->n < 1)
		return -1;
	*v = r->p[0];
	r->p++;
	r->n--;
	return 0;
}

static int
rd_u16(struct rd *r, unsigned *v)
{
	if (r->n < 2)
		return -1;
	*v = (unsigned)r->p[0] << 8 | r->p[1];
	r->p += 2;
	r->n -= 2;
	return 0;
}

static int
rd_skip(struct rd *r, size_t k)
{
	if (r->n < k)
		return -1;
	r->p += k;
	r->n -= k;
	return 0;
}

/*
 * A vector (RFC 8446 3.4) with a lenbytes-byte length: its contents
 * into *sub, which must fit in what is left and hold min..max bytes.
 */
static int
rd_vec(struct rd *r, int lenbytes, size_t min, size_t max, struct rd *sub)
{
	unsigned	 len;

	if ((lenbytes == 1 ? rd_u8(r, &len) : rd_u16(r, &len)) == -1 ||
	    len > r->n || len < min || len > max)
		return -1;
	sub->p = r->p;
	sub->n = len;
	r->p += len;
	r->n -= len;
	return 0;
}

/* The whole of r as one vector: nothing may follow it. */
static int
rd_only_vec(struct rd *r, int lenbytes, size_t min, size_t max,
    struct rd *sub)
{
	if (rd_vec(r, lenbytes, min, max, sub) == -1 || r->n != 0)
		return -1;
	return 0;
}

static int
u16cmp(const void *a, const void *b)
{
	uint16_t	 x = *(const uint16_t *)a, y = *(const uint16_t *)b;

	return (x > y) - (x < y);
}

static int
is_alnum(unsigned c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z');
}

static const char hexdig[] = "0123456789abcdef";

/*
 * Hash the comma-joined 4-digit hex of v[0..n), then, if n2 > 0, "_" and
 * those of v2[0..n2), into out: the first 12 hex digits of the SHA-256,
 * or twelve zeros if n is 0 (JA4 b and c).  The text goes to raw too if
 * not NULL.  Returns 0, or -1 if the digest failed (out is then "").
 */
static int
ja4_hash(const uint16_t *v, size_t n, const uint16_t *v2, size_t n2,
    char out[13], struct buf *raw)
{
	EVP_MD_CTX	*ctx;
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen;
	char		 item[6];
	const uint16_t	*l;
	size_t		 i, j, ln;
	int		 ok;

	if (n == 0) {
		memcpy(out, "000000000000", 13);
		return 0;
	}
	out[0] = '\0';
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (j = 0; j < 2 && ok; j++) {
		l = j == 0 ? v : v2;
		ln = j == 0 ? n : n2;
		if (j == 1 && ln > 0) {
			ok = EVP_DigestUpdate(ctx, "_", 1);
			if (raw != NULL)
				(void)buf_addc(raw, '_');
		}
		for (i = 0; i < ln && ok; i++) {
			item[0] = ',';
			item[1] = hexdig[l[i] >> 12];
			item[2] = hexdig[l[i] >> 8 & 0xf];
			item[3] = hexdig[l[i] >> 4 & 0xf];
			item[4] = hexdig[l[i] & 0xf];
			ok = EVP_DigestUpdate(ctx, item + (i == 0), 5 - (i == 0));
			if (raw != NULL)
				(void)buf_add(raw, item + (i == 0), 5 - (i == 0));
		}
	}
	if (ok)
		ok = EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	if (!ok || mdlen < 6)
		return -1;
	for (i = 0; i < 6; i++) {
		out[2 * i] = hexdig[md[i] >> 4];
		out[2 * i + 1] = hexdig[md[i] & 0xf];
	}
	out[12] = '\0';
	return 0;
}

/*
 * JA4 (FoxIO's JA4.md, BSD-3-Clause; JA4 only, not the other JA4+
 * methods), for TLS over TCP: a_b_c.
 * a: "t", the version (the highest in supported_versions, else
 * legacy_version), "d" if server_name is present else "i", the number
 * of ciphers and of extensions (GREASE excluded, at most 99), and the
 * first and last characters of the first ALPN value ("00" if none; the
 * first and last hex digits of the value if either is not alphanumeric).
 * b: the ciphers, sorted; c: the extensions but server_name and ALPN,
 * sorted, then "_" and signature_algorithms in wire order; GREASE is
 * left out everywhere.
 */
static void
ja4_make(struct tlshello *st, struct rd ciphers, const uint16_t *exts,
    size_t next_all, const struct rd *sigalgs, const struct rd *alpn1)
{
	uint16_t	*v, *cs, *ex, *sa;
	size_t		 ncs = 0, nex = 0, nsa = 0, i, nexcount = 0;
	char		*a = st->th_ja4, b[13], c[13];
	const char	*vs;
	unsigned	 c0, c1, u;
	struct rd	 r;

	st->th_ja4[0] = '\0';
	if ((v = calloc(ciphers.n / 2 + next_all + sigalgs->n / 2 + 1,
	    sizeof(*v))) == NULL)
		return;
	cs = v;
	while (rd_u16(&ciphers, &u) == 0)
		if (!tlshello_grease((uint16_t)u))
			cs[ncs++] = (uint16_t)u;
	ex = cs + ncs;
	for (i = 0; i < next_all; i++) {
		if (tlshello_grease(exts[i]))
			continue;
		nexcount++;
		if (exts[i] != EXT_SERVER_NAME && exts[i] != EXT_ALPN)
			ex[nex++] = exts[i];
	}
	sa = ex + nex;
	r = *sigalgs;
	while (rd_u16(&r, &u) == 0)
		if (!tlshello_grease((uint16_t)u))
			sa[nsa++] = (uint16_t)u;

	switch (st->th_version) {
	case 0x0304:	vs = "13"; break;
	case 0x0303:	vs = "12"; break;
	case 0x0302:	vs = "11"; break;
	case 0x0301:	vs = "10"; break;
	case 0x0300:	vs = "s3"; break;
	case 0x0002:	vs = "s2"; break;
	default:	vs = "00"; break;
	}
	if (alpn1->n == 0) {
		c0 = c1 = '0';
	} else {
		c0 = alpn1->p[0];
		c1 = alpn1->p[alpn1->n - 1];
		if (!is_alnum(c0) || !is_alnum(c1)) {
			c0 = (unsigned char)hexdig[c0 >> 4];
			c1 = (unsigned char)hexdig[c1 & 0xf];
		}
	}
	snprintf(a, 11, "t%s%c%02zu%02zu%c%c", vs, st->th_has_sni ? 'd' : 'i',
	    ncs > 99 ? 99 : ncs, nexcount > 99 ? 99 : nexcount, c0, c1);
	if (st->th_ja4_r != NULL) {
		(void)buf_add(st->th_ja4_r, a, 10);
		(void)buf_addc(st->th_ja4_r, '_');
	}
	qsort(cs, ncs, sizeof(*cs), u16cmp);
	qsort(ex, nex, sizeof(*ex), u16cmp);
	if (ja4_hash(cs, ncs, NULL, 0, b, st->th_ja4_r) == -1)
		goto fail;
	if (st->th_ja4_r != NULL)
		(void)buf_addc(st->th_ja4_r, '_');
	if (ja4_hash(ex, nex, sa, nsa, c, st->th_ja4_r) == -1)
		goto fail;
	snprintf(a + 10, TLSHELLO_JA4_LEN + 1 - 10, "_%s_%s", b, c);
	free(v);
	return;
fail:
	st->th_ja4[0] = '\0';
	free(v);
}

/* server_name (RFC 6066 3): keep the first host_name. */
static int
ext_sni(struct tlshello *st, struct rd body)
{
	struct rd	 list, name;
	unsigned	 type;

	st->th_has_sni = 1;
	/* JA4 counts an empty extension as present: let it be */
	if (body.n == 0)
		return 0;
	if (rd_only_vec(&body, 2, 1, SIZE_MAX, &list) == -1)
		return -1;
	while (list.n > 0) {
		/* HostName <1..2^16-1> */
		if (rd_u8(&list, &type) == -1 ||
		    rd_vec(&list, 2, 1, SIZE_MAX, &name) == -1)
			return -1;
		if (type != 0 || st->th_sni_len != 0 || st->th_sni_long)
			continue;
		if (name.n > TLSHELLO_SNI_MAX) {
			st->th_sni_long = 1;
			continue;
		}
		memcpy(st->th_sni, name.p, name.n);
		st->th_sni[name.n] = '\0';
		st->th_sni_len = name.n;
	}
	return 0;
}

/* ALPN (RFC 7301 3.1): the values that fit, the first for JA4. */
static int
ext_alpn(struct tlshello *st, struct rd body, struct rd *first)
{
	struct rd	 list, name;

	/* ProtocolNameList <2..2^16-1>, ProtocolName <1..2^8-1> */
	if (rd_only_vec(&body, 2, 2, SIZE_MAX, &list) == -1)
		return -1;
	while (list.n > 0) {
		if (rd_vec(&list, 1, 1, 255, &name) == -1)
			return -1;
		if (first->p == NULL)
			*first = name;
		if (st->th_alpn_len + 1 + name.n > sizeof(st->th_alpn)) {
			st->th_alpn_more = 1;
			continue;
		}
		st->th_alpn[st->th_alpn_len] = (uint8_t)name.n;
		memcpy(st->th_alpn + st->th_alpn_len + 1, name.p, name.n);
		st->th_alpn_len += 1 + name.n;
		st->th_alpn_count++;
	}
	return 0;
}

/* supported_versions in a ClientHello (RFC 8446 4.2.1): <2..254>. */
static int
ext_versions(struct tlshello *st, struct rd body)
{
	struct rd	 list;
	unsigned	 v;

	if (rd_only_vec(&body, 1, 2, 254, &list) == -1 || list.n % 2 != 0)
		return -1;
	while (rd_u16(&list, &v) == 0) {
		if (tlshello_grease((uint16_t)v))
			continue;
		if (st->th_nversions == 0 && !st->th_versions_more)
			st->th_version = (uint16_t)v;
		else if (v > st->th_version)
			st->th_version = (uint16_t)v;
		if (st->th_nversions == TLSHELLO_VERSIONS_MAX) {
			st->th_versions_more = 1;
			continue;
		}
		st->th_versions[st->th_nversions++] = (uint16_t)v;
	}
	return 0;
}

/* key_share in a ClientHello (RFC 8446 4.2.8): KeyShareEntry list. */
static int
ext_key_share(struct tlshello *st, struct rd body)
{
	struct rd	 list, ke;
	unsigned	 group;

	if (rd_only_vec(&body, 2, 0, SIZE_MAX, &list) == -1)
		return -1;
	while (list.n > 0) {
		/* key_exchange <1..2^16-1> */
		if (rd_u16(&list, &group) == -1 ||
		    rd_vec(&list, 2, 1, SIZE_MAX, &ke) == -1)
			return -1;
		if (!st->th_pq && tlshello_pq_group((uint16_t)group)) {
			st->th_pq = 1;
			st->th_pq_group = (uint16_t)group;
		}
	}
	return 0;
}

/*
 * The ClientHello's body (RFC 8446 4.1.2; RFC 5246 7.4.1.2, where
 * extensions may be absent).  Returns 0, or -1 if malformed.
 */
static int
parse_client_hello(struct tlshello *st, const uint8_t *p, size_t n)
{
	struct rd	 r = { p, n }, sid, ciphers, comp, exts, body;
	struct rd	 sigalgs = { NULL, 0 }, alpn1 = { NULL, 0 };
	uint16_t	*types = NULL;
	size_t		 ntypes = 0;
	unsigned	 v, type;
	int		 rc = -1;

	if (rd_u16(&r, &v) == -1 || rd_skip(&r, 32) == -1 ||
	    rd_vec(&r, 1, 0, 32, &sid) == -1 ||
	    rd_vec(&r, 2, 2, 65534, &ciphers) == -1 || ciphers.n % 2 != 0 ||
	    rd_vec(&r, 1, 1, 255, &comp) == -1)
		return -1;
	st->th_legacy_version = (uint16_t)v;
	st->th_version = (uint16_t)v;	/* until supported_versions says */
	exts.p = NULL;
	exts.n = 0;
	if (r.n > 0 && rd_only_vec(&r, 2, 0, SIZE_MAX, &exts) == -1)
		return -1;
	/* each extension takes 4 bytes at least */
	if (exts.n > 0 && (types = calloc(exts.n / 4, sizeof(*types))) == NULL)
		goto out;
	while (exts.n > 0) {
		if (rd_u16(&exts, &type) == -1 ||
		    rd_vec(&exts, 2, 0, SIZE_MAX, &body) == -1)
			goto out;
		types[ntypes++] = (uint16_t)type;
		switch (type) {
		case EXT_SERVER_NAME:
			if (ext_sni(st, body) == -1)
				goto out;
			break;
		case EXT_ALPN:
			if (ext_alpn(st, body, &alpn1) == -1)
				goto out;
			break;
		case EXT_SUPPORTED_VERSIONS:
			if (ext_versions(st, body) == -1)
				goto out;
			break;
		case EXT_SIGNATURE_ALGS:
			/* supported_signature_algorithms <2..2^16-2> */
			if (rd_only_vec(&body, 2, 2, 65534, &sigalgs) == -1 ||
			    sigalgs.n % 2 != 0)
				goto out;
			break;
		case EXT_KEY_SHARE:
			if (ext_key_share(st, body) == -1)
				goto out;
			break;
		case EXT_ECH:
			st->th_ech = 1;
			break;
		}
	}
	if (alpn1.p == NULL)
		alpn1.n = 0;
	ja4_make(st, ciphers, types, ntypes, &sigalgs, &alpn1);
	rc = 0;
out:
	free(types);
	return rc;
}

/*
 * The ServerHello's body (RFC 8446 4.1.3; RFC 5246 7.4.1.3): version,
 * cipher, HelloRetryRequest.  Returns 0, or -1 if malformed.
 */
static int
parse_server_hello(struct tlshello *st, const uint8_t *p, size_t n)
{
	struct rd	 r = { p, n }, sid, exts, body;
	unsigned	 v, cipher, comp, type, sel;

	if (rd_u16(&r, &v) == -1 || r.n < 32)
		return -1;
	st->th_legacy_version = (uint16_t)v;
	st->th_version = (uint16_t)v;
	st->th_hrr = memcmp(r.p, hrr_random, sizeof(hrr_random)) == 0;
	if (rd_skip(&r, 32) == -1 || rd_vec(&r, 1, 0, 32, &sid) == -1 ||
	    rd_u16(&r, &cipher) == -1 || rd_u8(&r, &comp) == -1)
		return -1;
	st->th_cipher = (uint16_t)cipher;
	if (r.n == 0)
		return 0;
	if (rd_only_vec(&r, 2, 0, SIZE_MAX, &exts) == -1)
		return -1;
	while (exts.n > 0) {
		if (rd_u16(&exts, &type) == -1 ||
		    rd_vec(&exts, 2, 0, SIZE_MAX, &body) == -1)
			return -1;
		switch (type) {
		case EXT_SUPPORTED_VERSIONS:
			/* selected_version, alone */
			if (rd_u16(&body, &sel) == -1 || body.n != 0)
				return -1;
			st->th_version = (uint16_t)sel;
			break;
		case EXT_KEY_SHARE:
			/* HRR: selected_group; else a KeyShareEntry */
			if (rd_u16(&body, &sel) == -1)
				return -1;
			if (st->th_hrr ? body.n != 0 :
			    rd_only_vec(&body, 2, 1, SIZE_MAX, &body) == -1)
				return -1;
			st->th_group = (uint16_t)sel;
			st->th_pq = tlshello_pq_group((uint16_t)sel);
			if (st->th_pq)
				st->th_pq_group = (uint16_t)sel;
			break;
		}
	}
	return 0;
}

/* Handshake bytes of the current record: the hello's header, then body. */
static enum tlshello_status
hs_feed(struct tlshello *st, const uint8_t *p, size_t n)
{
	size_t	 take, avail;

	if (st->th_nhhdr < 4) {
		take = 4 - st->th_nhhdr < n ? 4 - st->th_nhhdr : n;
		memcpy(st->th_hhdr + st->th_nhhdr, p, take);
		st->th_nhhdr += take;
		p += take;
		n -= take;
		if (st->th_nhhdr < 4)
			return TLSHELLO_MORE;
		/* RFC 8446 4: the first message each side sends */
		if (st->th_hhdr[0] != (st->th_dir == TLSHELLO_CLIENT ?
		    HT_CLIENT_HELLO : HT_SERVER_HELLO))
			return TLSHELLO_MALFORMED;
		st->th_msglen = (size_t)st->th_hhdr[1] << 16 |
		    (size_t)st->th_hhdr[2] << 8 | st->th_hhdr[3];
		st->th_hello_bytes = 4 + st->th_msglen;
		if (st->th_msglen > TLSHELLO_MAX_BYTES)
			return TLSHELLO_TOOBIG;
		if (st->th_msglen == 0)
			return TLSHELLO_MALFORMED;
		/* all of it at once: it is bounded, and then never moves */
		if (buf_space(&st->th_msg, st->th_msglen, &avail) == NULL ||
		    avail < st->th_msglen)
			return TLSHELLO_TOOBIG;
	}
	take = st->th_msglen - st->th_msg.b_len;
	if (take > n)
		take = n;
	if (take > 0 && buf_add(&st->th_msg, p, take) == -1)
		return TLSHELLO_TOOBIG;
	if (st->th_msg.b_len == st->th_msglen)
		st->th_msgdone = 1;
	return TLSHELLO_MORE;
}

/*
 * The hello is read and so is the record that ends it: parse it, so
 * that the fields are only ever set for a hello that is DONE.
 */
static enum tlshello_status
hs_done(struct tlshello *st)
{
	int	 rc;

	if (st->th_dir == TLSHELLO_CLIENT)
		rc = parse_client_hello(st, (const uint8_t *)st->th_msg.b_data,
		    st->th_msg.b_len);
	else
		rc = parse_server_hello(st, (const uint8_t *)st->th_msg.b_data,
		    st->th_msg.b_len);
	if (rc == -1) {
		/* no half-set fields */
		st->th_ja4[0] = '\0';
		return TLSHELLO_MALFORMED;
	}
	return TLSHELLO_DONE;
}

/*
 * TLS records (RFC 8446 5.1): handshake records only, none empty, none
 * over 2^14 bytes, and no other type between them.
 */
static enum tlshello_status
rec_feed(struct tlshello *st, const uint8_t *p, size_t n)
{
	enum tlshello_status	 s;
	size_t			 take;

	while (n > 0) {
		if (st->th_rleft == 0) {
			take = 5 - st->th_nrhdr < n ? 5 - st->th_nrhdr : n;
			memcpy(st->th_rhdr + st->th_nrhdr, p, take);
			st->th_nrhdr += take;
			p += take;
			n -= take;
			if (st->th_nrhdr < 5)
				return TLSHELLO_MORE;
			st->th_nrhdr = 0;
			st->th_rleft = (size_t)st->th_rhdr[3] << 8 |
			    st->th_rhdr[4];
			if (st->th_rhdr[0] != CT_HANDSHAKE ||
			    st->th_rhdr[1] != 3 || st->th_rhdr[2] > 4 ||
			    st->th_rleft == 0 || st->th_rleft > RECORD_MAX)
				return TLSHELLO_MALFORMED;
			if (++st->th_records > TLSHELLO_MAX_RECORDS)
				return TLSHELLO_TOOBIG;
			continue;
		}
		take = st->th_rleft < n ? st->th_rleft : n;
		if (!st->th_msgdone &&
		    (s = hs_feed(st, p, take)) != TLSHELLO_MORE)
			return s;
		p += take;
		n -= take;
		st->th_rleft -= take;
		/* done once the record that holds its end is whole */
		if (st->th_rleft == 0 && st->th_msgdone)
			return hs_done(st);
	}
	return TLSHELLO_MORE;
}

enum tlshello_status
tlshello_feed(struct tlshello *st, const void *buf, size_t len)
{
	const uint8_t		*p = buf;
	enum tlshello_status	 s;
	size_t			 take;

	if (st->th_status != TLSHELLO_MORE || len == 0)
		return st->th_status;
	if (st->th_proto == TLSHELLO_PROTO_NONE) {
		take = sizeof(st->th_first) - st->th_nfirst;
		if (take > len)
			take = len;
		memcpy(st->th_first + st->th_nfirst, p, take);
		st->th_nfirst += take;
		p += take;
		len -= take;
		st->th_proto = classify(st->th_first, st->th_nfirst);
		if (st->th_proto == TLSHELLO_PROTO_NONE)
			return TLSHELLO_MORE;
		if (st->th_proto != TLSHELLO_PROTO_TLS)
			return finish(st, TLSHELLO_NOTTLS);
		if ((s = rec_feed(st, st->th_first, st->th_nfirst)) !=
		    TLSHELLO_MORE)
			return finish(st, s);
	}
	if ((s = rec_feed(st, p, len)) != TLSHELLO_MORE)
		return finish(st, s);
	return TLSHELLO_MORE;
}

enum tlshello_status
tlshello_end(struct tlshello *st)
{
	if (st->th_status != TLSHELLO_MORE)
		return st->th_status;
	if (st->th_proto == TLSHELLO_PROTO_NONE) {
		if (st->th_nfirst > 0)
			st->th_proto = TLSHELLO_PROTO_UNKNOWN;
		return finish(st, TLSHELLO_NOTTLS);
	}
	st->th_truncated = 1;
	return finish(st, TLSHELLO_MALFORMED);
}
