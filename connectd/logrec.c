/* logrec.c: the log record of one tunnel or request: allocation, copies, close-reason and TLS names, the uid's random */
#include <sys/types.h>
#include <sys/random.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connectd.h"

/* The names are the log line's "close" values, as connectd.conf(5) lists them. */
static const char *const close_names[] = {
	[CLOSE_NONE] = NULL,
	[CLOSE_CLIENT_EOF] = "client_eof",
	[CLOSE_SERVER_EOF] = "server_eof",
	[CLOSE_IDLE_TIMEOUT] = "idle_timeout",
	[CLOSE_CLIENT_RESET] = "client_reset",
	[CLOSE_SERVER_RESET] = "server_reset",
	[CLOSE_DNS_FAILED] = "dns_failed",
	[CLOSE_CONNECT_FAILED] = "connect_failed",
	[CLOSE_CONNECT_TIMEOUT] = "connect_timeout",
	[CLOSE_BAD_REQUEST] = "bad_request",
	[CLOSE_HEADER_TIMEOUT] = "header_timeout",
	[CLOSE_DENIED] = "denied",
	[CLOSE_LIMIT] = "limit",
	[CLOSE_LIFETIME] = "lifetime",
	[CLOSE_SHUTDOWN] = "shutdown",
	[CLOSE_DONE] = "done",
};

/* The name of a close reason; NULL for CLOSE_NONE or an unknown value. */
const char *
logrec_close_name(enum close_reason r)
{
	if ((size_t)r >= nitems(close_names))
		return NULL;
	return close_names[r];
}

/* ------------------------------------------------ the "policy" field */

/* The members in the order the line writes them (connectd.conf(5)). */
static const char *const policy_names[LP_NMEMBERS] = {
	[LP_MODE] = "mode",
	[LP_VERDICT] = "verdict",
	[LP_RULE] = "rule",
	[LP_FROM] = "from",
	[LP_REASON] = "reason",
};

const char *
logpolicy_name(enum logpolicy_member m)
{
	return (size_t)m < nitems(policy_names) ? policy_names[m] : NULL;
}

struct logpolicy *
logpolicy_new(const char *const *v, const size_t *len)
{
	struct logpolicy	*p;
	size_t			 n[LP_NMEMBERS], size = sizeof(*p), off = 0;
	int			 i;

	for (i = 0; i < LP_NMEMBERS; i++) {
		if (v[i] == NULL) {
			n[i] = 0;
			continue;
		}
		n[i] = len[i];
		if (n[i] > LOGPOLICY_VALUE_MAX) {
			/*
			 * not within a character (at most 3 bytes back: one
			 * is at most 4 long), so that the line stays UTF-8
			 */
			n[i] = LOGPOLICY_VALUE_MAX;
			while (n[i] > LOGPOLICY_VALUE_MAX - 3 &&
			    ((unsigned char)v[i][n[i]] & 0xc0) == 0x80)
				n[i]--;
		}
		size += n[i] + 1;
	}
	if ((p = malloc(size)) == NULL)
		return NULL;
	p->lp_size = size;
	for (i = 0; i < LP_NMEMBERS; i++) {
		if (v[i] == NULL) {
			p->lp_off[i] = LOGPOLICY_NULL;
			continue;
		}
		p->lp_off[i] = (uint16_t)off;
		memcpy(p->lp_data + off, v[i], n[i]);
		p->lp_data[off + n[i]] = '\0';
		off += n[i] + 1;
	}
	return p;
}

struct logpolicy *
logpolicy_dup(const struct logpolicy *p)
{
	struct logpolicy	*d;

	if (p == NULL || (d = malloc(p->lp_size)) == NULL)
		return NULL;
	memcpy(d, p, p->lp_size);
	return d;
}

const char *
logpolicy_get(const struct logpolicy *p, enum logpolicy_member m)
{
	if (p == NULL || (size_t)m >= LP_NMEMBERS ||
	    p->lp_off[m] == LOGPOLICY_NULL)
		return NULL;
	return p->lp_data + p->lp_off[m];
}

/* ---------------------------------------- what peek.c put on the record */

static const char *const hello_names[PEEK_NHELLO] = {
	[PEEK_HELLO_NONE] = NULL,
	[PEEK_HELLO_COMPLETE] = "complete",
	[PEEK_HELLO_MALFORMED] = "malformed",
	[PEEK_HELLO_TRUNCATED] = "truncated",
	[PEEK_HELLO_TOOBIG] = "too_big",
	[PEEK_HELLO_TIMEOUT] = "timeout",
};

static const char *const match_names[PEEK_NMATCH] = {
	[PEEK_MATCH_NONE] = NULL,
	[PEEK_MATCH_MATCH] = "match",
	[PEEK_MATCH_MISMATCH] = "mismatch",
	[PEEK_MATCH_NO_SNI] = "no_sni",
	[PEEK_MATCH_ECH_OUTER] = "ech_outer",
	[PEEK_MATCH_IP_TARGET] = "ip_target",
};

const char *
logrec_hello_name(enum peek_hello h)
{
	return (size_t)h < nitems(hello_names) ? hello_names[h] : NULL;
}

const char *
logrec_match_name(enum peek_match m)
{
	return (size_t)m < nitems(match_names) ? match_names[m] : NULL;
}

/*
 * An SSLv2-style hello is logged as "tls": it is a TLS client's opening
 * (RFC 5246 E.2), only not one the reader parses, so "tls" is null.
 */
const char *
logrec_proto_name(int p)
{
	switch (p) {
	case TLSHELLO_PROTO_TLS:
	case TLSHELLO_PROTO_SSLV2:
		return "tls";
	case TLSHELLO_PROTO_SSH:
		return "ssh";
	case TLSHELLO_PROTO_HTTP:
		return "http";
	case TLSHELLO_PROTO_UNKNOWN:
		return "unknown";
	}
	return NULL;
}

/*
 * As Squid prints a TLS version (Security::NegotiationHistory::
 * printTlsVersion(): "%s/%d.%d" of the protocol, major and minor), so
 * that %ssl::>negotiated_version reads the same in both; anything else
 * (a draft, a GREASE value that got through) as its hex code.
 */
const char *
logrec_version_name(uint16_t v, char *buf)
{
	switch (v) {
	case 0x0304:
		return "TLS/1.3";
	case 0x0303:
		return "TLS/1.2";
	case 0x0302:
		return "TLS/1.1";
	case 0x0301:
		return "TLS/1.0";
	case 0x0300:
		return "SSL/3.0";
	case 0x0002:
		return "SSL/2.0";
	}
	snprintf(buf, 8, "0x%04x", v);
	return buf;
}

struct logtls *
logrec_tls_dup(const struct logtls *t)
{
	struct logtls	*d;
	size_t		 n;

	if (t == NULL)
		return NULL;
	n = sizeof(*t) + t->lt_sni_len + t->lt_alpn_len;
	if ((d = malloc(n)) == NULL)
		return NULL;
	memcpy(d, t, n);
	return d;
}

/* An empty record; NULL if out of memory. */
struct logrec *
logrec_new(void)
{
	return calloc(1, sizeof(struct logrec));
}

/* A copy of s, or NULL for NULL; *fail is set when out of memory. */
static char *
logrec_strdup(const char *s, int *fail)
{
	char	*p;

	if (s == NULL)
		return NULL;
	if ((p = strdup(s)) == NULL)
		*fail = 1;
	return p;
}

struct logrec *
logrec_dup(const struct logrec *rec)
{
	struct logrec	*d;
	int		 fail = 0;

	if ((d = malloc(sizeof(*d))) == NULL)
		return NULL;
	*d = *rec;
	d->lr_method = logrec_strdup(rec->lr_method, &fail);
	d->lr_authority = logrec_strdup(rec->lr_authority, &fail);
	d->lr_host = logrec_strdup(rec->lr_host, &fail);
	d->lr_user_agent = logrec_strdup(rec->lr_user_agent, &fail);
	d->lr_user = logrec_strdup(rec->lr_user, &fail);
	d->lr_detail = logrec_strdup(rec->lr_detail, &fail);
	d->lr_pod = logrec_strdup(rec->lr_pod, &fail);
	d->lr_rule = logrec_strdup(rec->lr_rule, &fail);
	d->lr_url = logrec_strdup(rec->lr_url, &fail);
	d->lr_content_type = logrec_strdup(rec->lr_content_type, &fail);
	if (rec->lr_tls != NULL && (d->lr_tls = logrec_tls_dup(rec->lr_tls)) ==
	    NULL)
		fail = 1;
	if (rec->lr_policy != NULL &&
	    (d->lr_policy = logpolicy_dup(rec->lr_policy)) == NULL)
		fail = 1;
	if (fail) {
		logrec_free(d);
		return NULL;
	}
	return d;
}

int
logrec_instance(char *buf, size_t len)
{
	struct timespec	 ts;
	uint64_t	 r = 0;
	ssize_t		 n;
	int		 rv = 0;

	/* 8 bytes never block once the pool is initialised (random(7)) */
	while ((n = getrandom(&r, sizeof(r), 0)) == -1 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(r)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		r = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
		r ^= (uint64_t)getpid() << 40;
		rv = -1;
	}
	snprintf(buf, len, "%016llx", (unsigned long long)r);
	return rv;
}

void
logrec_free(struct logrec *rec)
{
	if (rec == NULL)
		return;
	free(rec->lr_method);
	free(rec->lr_authority);
	free(rec->lr_host);
	free(rec->lr_user_agent);
	free(rec->lr_user);
	free(rec->lr_detail);
	free(rec->lr_pod);
	free(rec->lr_rule);
	free(rec->lr_url);
	free(rec->lr_content_type);
	free(rec->lr_tls);
	free(rec->lr_policy);
	free(rec);
}
