/* helperproto.c: Squid helper protocol: token escaping, reply quoting and parsing, request splitting */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "helperproto.h"
#include "util.h"

static const char	 hexdigits[] = "0123456789ABCDEF";

static int
hp_isspace(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' ||
	    c == '\f' || c == '\r';
}

/* Squid's rfc1738_do_escape(RFC1738_ESCAPE_UNSAFE) set, plus controls and 8-bit. */
static int
hp_unsafe(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return 1;
	return strchr("%<>\"#{}|\\^~[]`'", c) != NULL;
}

size_t
helper_escape(char *dst, size_t dstsize, const char *src, size_t len)
{
	const unsigned char	*s = (const unsigned char *)src;
	size_t			 i, n = 0, w = 0, need;
	int			 full = dstsize == 0;

	for (i = 0; i < len; i++) {
		need = hp_unsafe(s[i]) ? 3 : 1;
		/* once out of room, stop: never half an escape */
		if (!full && n + need < dstsize) {
			if (need == 3) {
				dst[n] = '%';
				dst[n + 1] = hexdigits[s[i] >> 4];
				dst[n + 2] = hexdigits[s[i] & 0xf];
			} else
				dst[n] = (char)s[i];
			w = n + need;
		} else
			full = 1;
		n += need;
	}
	if (dstsize > 0)
		dst[w] = '\0';
	return n;
}

size_t
helper_unescape(char *s, size_t len)
{
	size_t	i, j;
	int	v1, v2;

	for (i = j = 0; j < len; i++, j++) {
		s[i] = s[j];
		if (s[j] != '%')
			continue;
		if (j + 1 < len && s[j + 1] == '%') {
			j++;
			continue;
		}
		if (j + 2 >= len ||
		    (v1 = hexval((unsigned char)s[j + 1])) < 0 ||
		    (v2 = hexval((unsigned char)s[j + 2])) < 0)
			continue;
		if ((v1 << 4 | v2) == 0)
			continue;	/* Squid leaves %00 alone */
		s[i] = (char)(v1 << 4 | v2);
		j += 2;
	}
	return i;
}

size_t
helper_quote_inner_len(const char *src, size_t len)
{
	size_t	i, n = 0;

	for (i = 0; i < len; i++) {
		switch (src[i]) {
		case '\0':
			break;
		case '"':
		case '\\':
		case '\n':
		case '\r':
			n += 2;
			break;
		default:
			n++;
			break;
		}
	}
	return n;
}

size_t
helper_quote(char *dst, size_t dstsize, const char *src, size_t len)
{
	size_t	 i, n, need;
	char	 esc[2];

	n = helper_quote_inner_len(src, len) + 2;
	if (dstsize < n + 1) {
		if (dstsize > 0)
			dst[0] = '\0';
		return n;
	}
	*dst++ = '"';
	for (i = 0; i < len; i++) {
		need = 2;
		esc[0] = '\\';
		switch (src[i]) {
		case '\0':
			need = 0;
			break;
		case '"':
		case '\\':
			esc[1] = src[i];
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		default:
			need = 1;
			esc[0] = src[i];
			break;
		}
		memcpy(dst, esc, need);
		dst += need;
	}
	*dst++ = '"';
	*dst = '\0';
	return n;
}

/* Squid's strwordtok(): one word with "..." quoting and \-escapes inside quotes. */
static char *
hp_wordtok(char **pp, char *end, size_t *outlen)
{
	char	*p = *pp, *word, *d;
	int	 quoted = 0;
	char	 ch;

	while (p < end && hp_isspace((unsigned char)*p))
		p++;
	word = d = p;
	while (p < end) {
		ch = *p;
		if (ch == '\\') {
			if (quoted)
				p++;
			if (p < end) {
				ch = *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p;
				*d++ = ch;
				p++;
			}
		} else if (ch == '"') {
			quoted = !quoted;
			p++;
		} else if (!quoted && hp_isspace((unsigned char)ch)) {
			p++;
			break;
		} else
			*d++ = *p++;
	}
	*outlen = (size_t)(d - word);
	*d = '\0';
	*pp = p;
	return word;
}

static size_t
hp_strip_eol(const char *buf, size_t len)
{
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	return len;
}

static int
hp_digits(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || len > HELPER_ID_MAXLEN)
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/*
 * The value of a channel ID's digits, ULLONG_MAX if it does not fit: a
 * larger ID must not wrap around to a channel that was asked.
 */
static unsigned long long
hp_number(const char *s, size_t len)
{
	unsigned long long	n = 0, d;
	size_t			i;

	for (i = 0; i < len; i++) {
		d = (unsigned long long)(s[i] - '0');
		if (n > (ULLONG_MAX - d) / 10)
			return ULLONG_MAX;
		n = n * 10 + d;
	}
	return n;
}

int
helper_reply_parse(char *buf, size_t len, struct helper_reply *rp)
{
	char	*p, *end, *tok, *key;
	size_t	 toklen, keylen, vlen;
	int	 quoted;

	memset(rp, 0, sizeof(*rp));
	len = hp_strip_eol(buf, len);
	end = buf + len;
	*end = '\0';
	p = buf;
	while (p < end && hp_isspace((unsigned char)*p))
		p++;
	if (p == end)
		return -1;

	tok = p;
	while (p < end && !hp_isspace((unsigned char)*p))
		p++;
	toklen = (size_t)(p - tok);
	if (hp_digits(tok, toklen)) {
		rp->rp_id = tok;
		rp->rp_idlen = toklen;
		rp->rp_idnum = hp_number(tok, toklen);
		if (p < end)
			*p++ = '\0';
		while (p < end && hp_isspace((unsigned char)*p))
			p++;
		tok = p;
		while (p < end && !hp_isspace((unsigned char)*p))
			p++;
		toklen = (size_t)(p - tok);
	}
	if (toklen == 2 && memcmp(tok, "OK", 2) == 0)
		rp->rp_result = HELPER_OK;
	else if (toklen == 3 && memcmp(tok, "ERR", 3) == 0)
		rp->rp_result = HELPER_ERR;
	else if (toklen == 2 && memcmp(tok, "BH", 2) == 0)
		rp->rp_result = HELPER_BH;
	else {
		rp->rp_result = HELPER_UNKNOWN;
		rp->rp_rest = tok;
		return 0;
	}

	for (;;) {
		while (p < end && hp_isspace((unsigned char)*p))
			p++;
		if (p == end)
			break;
		key = p;
		while (p < end && *p != '=' && *p != ' ')
			p++;
		/* Squid: not a key if no '=' or whitespace right after it */
		if (p == end || *p != '=' || p == key ||
		    (p + 1 < end && hp_isspace((unsigned char)p[1]))) {
			rp->rp_rest = key;
			break;
		}
		keylen = (size_t)(p - key);
		*p++ = '\0';
		quoted = p < end && *p == '"';
		tok = hp_wordtok(&p, end, &vlen);
		if (!quoted) {
			vlen = helper_unescape(tok, vlen);
			tok[vlen] = '\0';
		}
		if (rp->rp_nkv == HELPER_KV_MAX) {
			rp->rp_dropped++;
			continue;
		}
		rp->rp_kv[rp->rp_nkv].kv_key = key;
		rp->rp_kv[rp->rp_nkv].kv_keylen = keylen;
		rp->rp_kv[rp->rp_nkv].kv_value = tok;
		rp->rp_kv[rp->rp_nkv].kv_valuelen = vlen;
		rp->rp_nkv++;
	}
	return 0;
}

const struct helper_kv *
helper_reply_get(const struct helper_reply *rp, const char *key)
{
	size_t	i, klen = strlen(key);

	for (i = 0; i < rp->rp_nkv; i++)
		if (rp->rp_kv[i].kv_keylen == klen &&
		    memcmp(rp->rp_kv[i].kv_key, key, klen) == 0)
			return &rp->rp_kv[i];
	return NULL;
}

int
helper_request_split(char *buf, size_t len, enum helper_idmode idmode,
    int decode, struct helper_request *rq)
{
	char	*p, *end, *tok;
	size_t	 toklen, first = 0;

	memset(rq, 0, sizeof(*rq));
	len = hp_strip_eol(buf, len);
	end = buf + len;
	*end = '\0';
	p = buf;
	for (;;) {
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end)
			break;
		tok = p;
		while (p < end && *p != ' ' && *p != '\t')
			p++;
		toklen = (size_t)(p - tok);
		*p = '\0';
		if (p < end)
			p++;
		if (rq->rq_ntok == HELPER_TOKENS_MAX) {
			rq->rq_dropped++;
			continue;
		}
		rq->rq_tok[rq->rq_ntok] = tok;
		rq->rq_toklen[rq->rq_ntok] = toklen;
		rq->rq_ntok++;
	}

	if (rq->rq_ntok > 0 && idmode != HELPER_ID_NONE &&
	    hp_digits(rq->rq_tok[0], rq->rq_toklen[0]) &&
	    (idmode == HELPER_ID_REQUIRED || rq->rq_ntok + rq->rq_dropped > 1))
		first = 1;
	else if (idmode == HELPER_ID_REQUIRED)
		return -1;
	if (first) {
		rq->rq_id = rq->rq_tok[0];
		rq->rq_idlen = rq->rq_toklen[0];
		rq->rq_idnum = hp_number(rq->rq_id, rq->rq_idlen);
		memmove(rq->rq_tok, rq->rq_tok + 1,
		    (rq->rq_ntok - 1) * sizeof(rq->rq_tok[0]));
		memmove(rq->rq_toklen, rq->rq_toklen + 1,
		    (rq->rq_ntok - 1) * sizeof(rq->rq_toklen[0]));
		rq->rq_ntok--;
	}
	if (decode) {
		for (first = 0; first < rq->rq_ntok; first++) {
			toklen = helper_unescape(rq->rq_tok[first],
			    rq->rq_toklen[first]);
			rq->rq_tok[first][toklen] = '\0';
			rq->rq_toklen[first] = toklen;
		}
	}
	return 0;
}

const char *
helper_result_name(enum helper_result r)
{
	switch (r) {
	case HELPER_OK:
		return "OK";
	case HELPER_ERR:
		return "ERR";
	case HELPER_BH:
		return "BH";
	default:
		return "Unknown";
	}
}
