/* proto.c: podmeta's side of the helper protocol: parse a request line, build its reply */
#include <sys/types.h>
#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "podmeta.h"

/* Append s[0..len) as a Squid quoted value "...". */
static int
proto_addquoted(struct buf *out, const char *s, size_t len)
{
	char	*p;
	size_t	 n, avail;

	n = helper_quote(NULL, 0, s, len);
	if ((p = buf_space(out, n, &avail)) == NULL || avail < n)
		return -1;
	/* buf_space() leaves room for the NUL after avail bytes */
	helper_quote(p, avail + 1, s, len);
	buf_commit(out, n);
	return 0;
}

/*
 * An address as Squid sends %SRC: IPv4, IPv6, [IPv6], IPv6%zone (the
 * zone is ignored; an IPv4 address takes none).  s[len] is writable.
 */
static int
proto_addr_parse(char *s, size_t len, struct in6_addr *a)
{
	char	*zone;
	int	 af;

	if (len == 0 || len > ADDR_STRLEN + 16 || strlen(s) != len)
		return -1;
	if (s[0] == '[' && s[len - 1] == ']') {
		s[len - 1] = '\0';
		s++;
	}
	if ((zone = strchr(s, '%')) != NULL)
		*zone = '\0';
	if (addr_key_parse(s, a, &af) == -1 ||
	    (zone != NULL && af != AF_INET6))
		return -1;
	return 0;
}

static int proto_parse(char *, size_t, enum helper_idmode, size_t, int,
    struct proto_req *);

int
proto_parse_as(char *line, size_t len, enum helper_idmode idmode,
    size_t addrtok, struct proto_req *pr)
{
	return proto_parse(line, len, idmode, addrtok, 0, pr);
}

int
proto_parse_policy(char *line, size_t len, enum helper_idmode idmode,
    size_t addrtok, struct proto_req *pr)
{
	return proto_parse(line, len, idmode, addrtok, 1, pr);
}

/* A name token into dst: "" if it is too long to be one. */
static void
proto_name(char *dst, const char *tok, size_t toklen)
{
	if (toklen > POLICY_HOST_MAX)
		toklen = 0;
	memcpy(dst, tok, toklen);
	dst[toklen] = '\0';
}

static int
proto_parse(char *line, size_t len, enum helper_idmode idmode,
    size_t addrtok, int policy, struct proto_req *pr)
{
	struct helper_request	 rq;
	unsigned long		 port;
	char			*end;

	memset(pr, 0, sizeof(*pr));
	if (helper_request_split(line, len, idmode, 1, &rq) == -1) {
		/* only HELPER_ID_REQUIRED fails, without a leading number */
		pr->pr_error = rq.rq_ntok == 0 ? "empty request" :
		    "no channel ID";
		return -1;
	}
	if (rq.rq_id != NULL)
		memcpy(pr->pr_id, rq.rq_id, rq.rq_idlen);
	if (rq.rq_ntok == 0) {
		pr->pr_error = "empty request";
		return -1;
	}
	/*
	 * The address is where %SRC is in the FORMAT: podmeta cannot tell
	 * %SRC from %MYADDR or %DST by looking, so it never guesses.  The
	 * other tokens (%SRCPORT, %DATA, usually "-") are not used.
	 */
	if (addrtok < 1 || addrtok > rq.rq_ntok) {
		pr->pr_error = "no client address";
		return -1;
	}
	if (proto_addr_parse(rq.rq_tok[addrtok - 1], rq.rq_toklen[addrtok - 1],
	    &pr->pr_addr) == -1) {
		pr->pr_error = "not an IP address";
		return -1;
	}
	if (!policy)
		return 0;
	/* %SRC %DST %PORT [%ssl::>sni], in that order */
	if (addrtok + 2 > rq.rq_ntok) {
		pr->pr_error = "no destination and port after the address";
		return -1;
	}
	proto_name(pr->pr_dst, rq.rq_tok[addrtok], rq.rq_toklen[addrtok]);
	port = strtoul(rq.rq_tok[addrtok + 1], &end, 10);
	if (rq.rq_tok[addrtok + 1][0] < '0' || rq.rq_tok[addrtok + 1][0] > '9' ||
	    *end != '\0' || port > 65535) {
		pr->pr_error = "not a port";
		return -1;
	}
	pr->pr_port = (unsigned)port;
	if (addrtok + 2 < rq.rq_ntok)
		proto_name(pr->pr_sni, rq.rq_tok[addrtok + 2],
		    rq.rq_toklen[addrtok + 2]);
	return 0;
}

int
proto_reply(struct buf *out, const struct proto_req *pr,
    enum proto_answer ans, const char *tail, size_t taillen)
{
	char	 ip[ADDR_STRLEN];

	if (pr->pr_id[0] != '\0' &&
	    (buf_addstr(out, pr->pr_id) == -1 || buf_addc(out, ' ') == -1))
		return -1;
	switch (ans) {
	case PROTO_HIT:
		addr_key_ntop(&pr->pr_addr, ip, sizeof(ip));
		if (buf_addstr(out, "OK log=\"{\\\"ip\\\":\\\"") == -1 ||
		    buf_addstr(out, ip) == -1 ||
		    buf_add(out, tail, taillen) == -1)
			return -1;
		break;
	case PROTO_UNKNOWN_OK:
		addr_key_ntop(&pr->pr_addr, ip, sizeof(ip));
		if (buf_addstr(out, "OK log=\"{\\\"ip\\\":\\\"") == -1 ||
		    buf_addstr(out, ip) == -1 ||
		    buf_addstr(out, "\\\",\\\"pod\\\":null}\"") == -1)
			return -1;
		break;
	case PROTO_UNKNOWN_ERR:
		if (buf_addstr(out, "ERR") == -1)
			return -1;
		break;
	case PROTO_BH:
	case PROTO_BAD:
		if (tail == NULL)
			tail = pr->pr_error != NULL ? pr->pr_error : "error";
		if (buf_addstr(out, ans == PROTO_BH ?
		    "BH message=" : "ERR message=") == -1 ||
		    proto_addquoted(out, tail, strlen(tail)) == -1)
			return -1;
		break;
	}
	return buf_addc(out, '\n');
}

int
proto_reply_policy(struct buf *out, const struct proto_req *pr, int ok,
    const char *tail, size_t taillen, const char *pol)
{
	char	 ip[ADDR_STRLEN];

	if (pr->pr_id[0] != '\0' &&
	    (buf_addstr(out, pr->pr_id) == -1 || buf_addc(out, ' ') == -1))
		return -1;
	addr_key_ntop(&pr->pr_addr, ip, sizeof(ip));
	if (buf_addstr(out, ok ? "OK" : "ERR") == -1 ||
	    buf_addstr(out, " log=\"{\\\"ip\\\":\\\"") == -1 ||
	    buf_addstr(out, ip) == -1)
		return -1;
	if (tail != NULL) {
		if (buf_add(out, tail, taillen) == -1)
			return -1;
	} else if (buf_addstr(out, "\\\",\\\"pod\\\":null}\"") == -1)
		return -1;
	if (buf_addstr(out, " policy=") == -1 ||
	    proto_addquoted(out, pol, strlen(pol)) == -1)
		return -1;
	return buf_addc(out, '\n');
}
