/* helperproto.h: Squid helper protocol: token escaping, reply quoting and parsing, request splitting */
#ifndef HELPERPROTO_H
#define HELPERPROTO_H

#include <stddef.h>

#define HELPER_ID_MAXLEN	20	/* digits in a channel ID */
#define HELPER_KV_MAX		16	/* key=value pairs kept from one reply */
#define HELPER_TOKENS_MAX	16	/* tokens kept from one request */

enum helper_result {
	HELPER_UNKNOWN = 0,		/* none of the below: Squid's "Unknown" */
	HELPER_OK,
	HELPER_ERR,
	HELPER_BH
};

/* How helper_request_split() treats a leading all-digit token. */
enum helper_idmode {
	HELPER_ID_NONE,			/* never a channel ID */
	HELPER_ID_REQUIRED,		/* always a channel ID (concurrency > 0) */
	HELPER_ID_AUTO			/* an ID when more tokens follow it */
};

/* One key=value note of a reply; both point into the parsed line. */
struct helper_kv {
	char		*kv_key;
	size_t		 kv_keylen;
	char		*kv_value;	/* decoded, NUL-terminated */
	size_t		 kv_valuelen;
};

/* A parsed reply line; every pointer points into the caller's buffer. */
struct helper_reply {
	char			*rp_id;		/* NULL if none, else digits */
	size_t			 rp_idlen;
	unsigned long long	 rp_idnum;	/* ULLONG_MAX if too large */
	enum helper_result	 rp_result;
	struct helper_kv	 rp_kv[HELPER_KV_MAX];
	size_t			 rp_nkv;
	size_t			 rp_dropped;	/* pairs beyond HELPER_KV_MAX */
	char			*rp_rest;	/* text that is not key=value, or NULL */
};

/* A split request line; every pointer points into the caller's buffer. */
struct helper_request {
	char			*rq_id;		/* NULL if none, else digits */
	size_t			 rq_idlen;
	unsigned long long	 rq_idnum;	/* ULLONG_MAX if too large */
	char			*rq_tok[HELPER_TOKENS_MAX]; /* NUL-terminated */
	size_t			 rq_toklen[HELPER_TOKENS_MAX];
	size_t			 rq_ntok;
	size_t			 rq_dropped;	/* tokens beyond HELPER_TOKENS_MAX */
};

/* rfc1738-escape src into dst (NUL-terminated if dstsize > 0); returns the full escaped length. */
size_t	helper_escape(char *, size_t, const char *, size_t);
/* rfc1738-unescape s[0..len) in place as Squid does (%XX except %00, %% -> %); returns the new length. */
size_t	helper_unescape(char *, size_t);
/* Write src as a Squid quoted value "..." (\" \\ \n \r escaped, NUL dropped); returns the full length. */
size_t	helper_quote(char *, size_t, const char *, size_t);
/* Length helper_quote() would write without the two surrounding quotes. */
size_t	helper_quote_inner_len(const char *, size_t);
/* Parse "[ID] OK|ERR|BH [key=value ...]" in place (buf[len] must be writable); 0, or -1 if empty. */
int	helper_reply_parse(char *, size_t, struct helper_reply *);
/* First value of key in a parsed reply, or NULL. */
const struct helper_kv *helper_reply_get(const struct helper_reply *, const char *);
/* Split a request line into an optional channel ID and tokens in place (buf[len] writable); decode: unescape tokens. */
int	helper_request_split(char *, size_t, enum helper_idmode, int,
	    struct helper_request *);
/* Name of a result code as Squid writes it ("OK", "ERR", "BH", "Unknown"). */
const char *helper_result_name(enum helper_result);

#endif
