/* proto.c: podmeta's side of the helper protocol: parse a request line, build its reply */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>

#include "podmeta.h"

static int
pbuf_reserve(struct pbuf *pb, size_t len)
{
	char	*p;
	size_t	 cap;

	if (pb->pb_len + len + 1 <= pb->pb_cap)
		return 0;
	cap = pb->pb_cap ? pb->pb_cap : 512;
	while (cap < pb->pb_len + len + 1)
		cap *= 2;
	if ((p = realloc(pb->pb_data, cap)) == NULL)
		return -1;
	pb->pb_data = p;
	pb->pb_cap = cap;
	return 0;
}

static int
pbuf_add(struct pbuf *pb, const char *s, size_t len)
{
	if (pbuf_reserve(pb, len) == -1)
		return -1;
	memcpy(pb->pb_data + pb->pb_len, s, len);
	pb->pb_len += len;
	pb->pb_data[pb->pb_len] = '\0';
	return 0;
}

static int
pbuf_adds(struct pbuf *pb, const char *s)
{
	return pbuf_add(pb, s, strlen(s));
}

static int
pbuf_addquoted(struct pbuf *pb, const char *s)
{
	size_t	 n, len = strlen(s);

	n = helper_quote(NULL, 0, s, len);
	if (pbuf_reserve(pb, n) == -1)
		return -1;
	helper_quote(pb->pb_data + pb->pb_len, pb->pb_cap - pb->pb_len, s,
	    len);
	pb->pb_len += n;
	return 0;
}

void
pbuf_free(struct pbuf *pb)
{
	free(pb->pb_data);
	memset(pb, 0, sizeof(*pb));
}

void
proto_addr_str(const struct in6_addr *a, char *buf, size_t size)
{
	if (IN6_IS_ADDR_V4MAPPED(a))
		inet_ntop(AF_INET, &a->s6_addr[12], buf, size);
	else
		inet_ntop(AF_INET6, a, buf, size);
}

/* An address as Squid sends %SRC: IPv4, IPv6, [IPv6], IPv6%zone. */
static int
proto_addr_parse(char *s, size_t len, struct in6_addr *a)
{
	struct in_addr	 in4;
	char		*p;

	if (len == 0 || len > INET6_ADDRSTRLEN + 16 || strlen(s) != len)
		return -1;
	if (s[0] == '[' && s[len - 1] == ']') {
		s[len - 1] = '\0';
		s++;
	}
	if (inet_pton(AF_INET, s, &in4) == 1) {
		memset(a, 0, sizeof(*a));
		a->s6_addr[10] = 0xff;
		a->s6_addr[11] = 0xff;
		memcpy(&a->s6_addr[12], &in4, 4);
		return 0;
	}
	if ((p = strchr(s, '%')) != NULL)
		*p = '\0';
	if (inet_pton(AF_INET6, s, a) == 1)
		return 0;
	return -1;
}

int
proto_parse(char *line, size_t len, struct proto_req *pr)
{
	struct helper_request	 rq;

	memset(pr, 0, sizeof(*pr));
	if (helper_request_split(line, len, HELPER_ID_AUTO, 1, &rq) == -1) {
		pr->pr_error = "unparseable request";
		return -1;
	}
	if (rq.rq_id != NULL)
		memcpy(pr->pr_id, rq.rq_id, rq.rq_idlen);
	if (rq.rq_ntok == 0) {
		pr->pr_error = "empty request";
		return -1;
	}
	/* later tokens (%DATA, usually "-") are not used */
	if (proto_addr_parse(rq.rq_tok[0], rq.rq_toklen[0],
	    &pr->pr_addr) == -1) {
		pr->pr_error = "not an IP address";
		return -1;
	}
	return 0;
}

/*
 * Append one reply line for pr to pb.  For PROTO_HIT, tail/taillen is
 * a pod's rendered tail; for PROTO_BH and PROTO_BAD, tail is a message.
 */
int
proto_reply(struct pbuf *pb, const struct proto_req *pr,
    enum proto_answer ans, const char *tail, size_t taillen)
{
	char	 ip[INET6_ADDRSTRLEN];

	if (pr->pr_id[0] != '\0' &&
	    (pbuf_adds(pb, pr->pr_id) == -1 || pbuf_add(pb, " ", 1) == -1))
		return -1;
	switch (ans) {
	case PROTO_HIT:
		proto_addr_str(&pr->pr_addr, ip, sizeof(ip));
		if (pbuf_adds(pb, "OK log=\"{\\\"ip\\\":\\\"") == -1 ||
		    pbuf_adds(pb, ip) == -1 ||
		    pbuf_add(pb, tail, taillen) == -1)
			return -1;
		break;
	case PROTO_UNKNOWN_OK:
		proto_addr_str(&pr->pr_addr, ip, sizeof(ip));
		if (pbuf_adds(pb, "OK log=\"{\\\"ip\\\":\\\"") == -1 ||
		    pbuf_adds(pb, ip) == -1 ||
		    pbuf_adds(pb, "\\\",\\\"pod\\\":null}\"") == -1)
			return -1;
		break;
	case PROTO_UNKNOWN_ERR:
		if (pbuf_adds(pb, "ERR") == -1)
			return -1;
		break;
	case PROTO_BH:
	case PROTO_BAD:
		if (pbuf_adds(pb, ans == PROTO_BH ?
		    "BH message=" : "ERR message=") == -1 ||
		    pbuf_addquoted(pb, tail != NULL ? tail :
		    pr->pr_error != NULL ? pr->pr_error : "error") == -1)
			return -1;
		break;
	}
	return pbuf_add(pb, "\n", 1);
}
