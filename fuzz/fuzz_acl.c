/* fuzz_acl.c: libFuzzer harness for acl values, dstdomain matching and http_access */
/* fuzz-sources: connectd/conf.c connectd/logformat.c connectd/logrec.c connectd/helper_conf.c lib/jsonutil.c lib/buf.c lib/addr.c lib/timefmt.c lib/diag.c */
/* fuzz-libs: jansson libpcre2-8 */
/* fuzz-options: -max_len=4096 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the static matchers are checked against a plain model below */
#include "acl.c"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

void
accesslog_close(struct conf *c)
{
}

/* no worker runs here: a conf's last reference frees it at once */
int
worker_conf_dead(struct conf *c)
{
	return -1;
}

/* .x matches x and every name under it; x only itself; any case */
static int
model_domain(const struct acl *a, const char *host)
{
	char	 h[HOST_NAME_MAX_LEN + 2];
	size_t	 i, hl, vl;

	if (acl_host_norm(host, h, sizeof(h)) == 0)
		return 0;
	hl = strlen(h);
	for (i = 0; i < a->a_nstrs; i++)
		if (strcmp(h, a->a_strs[i]) == 0)
			return 1;
	for (i = 0; i < a->a_ndots; i++) {
		vl = strlen(a->a_dots[i]);
		if (strcmp(h, a->a_dots[i]) == 0)
			return 1;
		if (hl > vl && h[hl - vl - 1] == '.' &&
		    strcmp(h + hl - vl, a->a_dots[i]) == 0)
			return 1;
	}
	return 0;
}

/*
 * Input: a first line "CLIENT HOST PORT [sni=NAME/MATCH] ADDR...", then
 * acl and http_access lines.  The verdict before the addresses are known
 * must be ACL_WAIT or the verdict after; after, it is never ACL_WAIT.
 * Then the ClientHello (issue 13): with it known (the sni= token's name
 * and peek_match, or none), the verdict is never ACL_WAIT nor ACL_HOLD,
 * and a verdict reached without it (not ACL_HOLD) does not change.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char	 head[] = "http_port 127.0.0.1:3128\n";
	struct sockaddr_storage	 addrs[4], client;
	struct sockaddr_in6	*sin6;
	struct conf		*cf;
	struct acl_request	 ar;
	struct acl		*a;
	const char		*eol, *rule;
	char			 first[512], *w, *last, *buf, err[ERRBUF_LEN];
	char			 host[HOST_NAME_MAX_LEN + 1];
	char			 sni[HOST_NAME_MAX_LEN + 1], *slash;
	uint8_t			 v6[16];
	size_t			 n, len, naddrs = 0;
	int			 before, after, hello, af, has_sni = 0;
	int			 match = PEEK_MATCH_NONE;

	if ((eol = memchr(data, '\n', size)) == NULL ||
	    (size_t)(eol - (const char *)data) >= sizeof(first))
		return 0;
	len = eol - (const char *)data;
	memcpy(first, data, len);
	first[len] = '\0';
	n = size - len - 1;
	if ((buf = malloc(sizeof(head) + n)) == NULL)
		return 0;
	memcpy(buf, head, sizeof(head) - 1);
	memcpy(buf + sizeof(head) - 1, eol + 1, n);
	if (conf_load_buffer("fuzz.conf", buf, sizeof(head) - 1 + n, &cf, err,
	    sizeof(err)) == -1) {
		free(buf);
		return 0;
	}
	free(buf);

	/* no helper runs here: an external acl is never decided, "no" */
	memset(&ar, 0, sizeof(ar));
	memset(&client, 0, sizeof(client));
	ar.ar_client = &client;
	ar.ar_method = "CONNECT";
	host[0] = '\0';
	if ((w = strtok_r(first, " ", &last)) != NULL &&
	    acl_addr_parse(w, v6, &af) == 0) {
		sin6 = (struct sockaddr_in6 *)&client;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, v6, 16);
	}
	if ((w = strtok_r(NULL, " ", &last)) != NULL &&
	    strlen(w) <= HOST_NAME_MAX_LEN)
		snprintf(host, sizeof(host), "%s", w);
	ar.ar_host = host;
	if ((w = strtok_r(NULL, " ", &last)) != NULL)
		ar.ar_port = atoi(w) & 0xffff;
	memset(addrs, 0, sizeof(addrs));
	sni[0] = '\0';
	while (naddrs < 4 && (w = strtok_r(NULL, " ", &last)) != NULL)
		if (strncmp(w, "sni=", 4) == 0 && !has_sni) {
			if ((slash = strrchr(w + 4, '/')) != NULL) {
				*slash = '\0';
				match = atoi(slash + 1) % PEEK_NMATCH;
			}
			if (strlen(w + 4) <= HOST_NAME_MAX_LEN) {
				snprintf(sni, sizeof(sni), "%s", w + 4);
				has_sni = 1;
			}
		} else if (acl_addr_parse(w, v6, &af) == 0) {
			sin6 = (struct sockaddr_in6 *)&addrs[naddrs++];
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, v6, 16);
		}

	rule = NULL;
	before = acl_check(cf->c_acl, &ar, &rule);
	if (before != ACL_WAIT && rule == NULL)
		__builtin_trap();
	ar.ar_addrs = addrs;
	ar.ar_naddrs = naddrs;
	rule = NULL;
	after = acl_check(cf->c_acl, &ar, &rule);
	if (after == ACL_WAIT || rule == NULL)
		__builtin_trap();
	if (before != ACL_WAIT && before != after)
		__builtin_trap();

	/* the hello is read: nothing is left to wait or hold for */
	ar.ar_hello = 1;
	ar.ar_sni = has_sni && sni[0] != '\0' ? sni : NULL;
	ar.ar_sni_match = match;
	rule = NULL;
	hello = acl_check(cf->c_acl, &ar, &rule);
	if (hello == ACL_WAIT || hello == ACL_HOLD || rule == NULL)
		__builtin_trap();
	if (after != ACL_HOLD && hello != after)
		__builtin_trap();

	if (cf->c_acl != NULL)
		TAILQ_FOREACH(a, &cf->c_acl->ac_acls, a_entry)
			if ((a->a_type == ACL_DSTDOMAIN &&
			    acl_domain_match(a, host) != model_domain(a, host)) ||
			    (a->a_type == ACL_SSL_SERVER_NAME &&
			    acl_domain_match(a, sni) != model_domain(a, sni)))
				__builtin_trap();
	conf_unref(cf);
	return 0;
}
