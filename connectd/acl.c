/* acl.c: Squid-style acl and http_access: parsing, checking, dumping */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "connectd.h"
#include "hash.h"
#include "helper.h"

#define ACL_NAME_MAX		64
#define ACL_FILE_MAX_VALUES	(1024 * 1024)
#define ACL_FILE_MAX_SIZE	(64 * 1024 * 1024)

enum acl_type {
	ACL_SRC,
	ACL_DST,
	ACL_PORT,
	ACL_DSTDOMAIN,
	ACL_DSTDOM_REGEX,
	ACL_EXTERNAL,
	ACL_METHOD,
	ACL_PROTO,		/* the URL scheme: HTTP, or NONE for CONNECT */
	ACL_SSL_SERVER_NAME,	/* the ClientHello's SNI (issue 13) */
	ACL_SSL_SERVER_NAME_REGEX,
	ACL_TLS_SNI_MATCH,	/* the SNI against the CONNECT host */
	ACL_PROXY_AUTH,		/* auth_param basic said OK (issue 15) */
	ACL_SELF,		/* to_self: this host's own addresses */
	ACL_NEVER		/* Squid's manager: never a CONNECT */
};

/* what one acl says about one request */
enum acl_match {
	ACL_NO = 0,
	ACL_YES = 1,
	ACL_UNKNOWN = -1,	/* no addresses yet, or a helper is asked */
	ACL_HELLO = -2		/* needs the ClientHello, not read yet */
};

/* addresses are kept as IPv6, IPv4 as ::ffff:a.b.c.d, as Squid does */
struct acl_net {
	uint8_t		 an_lo[16];
	uint8_t		 an_hi[16];
	uint8_t		 an_mask[16];
};

struct acl_range {
	unsigned	 ar_lo;
	unsigned	 ar_hi;
};

struct acl_regex {
	pcre2_code	*rx_code;
};

struct acl {
	struct hnode	 a_node;	/* in ac_names */
	char		*a_name;
	enum acl_type	 a_type;
	int		 a_predefined;
	struct acl_net	*a_nets;
	size_t		 a_nnets;
	struct acl_range *a_ranges;
	size_t		 a_nranges;
	char		**a_strs;	/* dstdomain exact, method */
	size_t		 a_nstrs;
	char		**a_dots;	/* dstdomain ".x": "x" */
	size_t		 a_ndots;
	struct acl_regex *a_regexes;
	size_t		 a_nregexes;
	char		*a_helper;	/* external: external_acl_type name */
	char		*a_data;	/* external: %DATA, NULL for "-" */
	int		 a_hello;	/* external: its FORMAT has %ssl::>sni */
	int		 a_required;	/* proxy_auth REQUIRED: any user */
	size_t		 a_lineno;	/* its first line, for acl_conf_finish */
	TAILQ_ENTRY(acl) a_entry;
};

struct acl_term {
	struct acl	*at_acl;
	int		 at_negate;
};

struct acl_rule {
	int		 ru_allow;
	struct acl_term	*ru_terms;
	size_t		 ru_nterms;
	char		*ru_text;	/* "http_access deny to_linklocal" */
	TAILQ_ENTRY(acl_rule) ru_entry;
};

/* a line as given, for acl_conf_dump() */
struct acl_line {
	char		*al_text;
	TAILQ_ENTRY(acl_line) al_entry;
};

struct acl_conf {
	TAILQ_HEAD(, acl)	 ac_acls;
	struct htab		 ac_names;	/* the acls by lower-case name */
	TAILQ_HEAD(acl_rules, acl_rule) ac_rules;
	TAILQ_HEAD(, acl_line)	 ac_lines;
	pcre2_match_data	*ac_match;
};

static const struct {
	const char	*at_name;
	enum acl_type	 at_type;
} acl_types[] = {
	{ "src",		ACL_SRC },
	{ "dst",		ACL_DST },
	{ "port",		ACL_PORT },
	{ "dstdomain",		ACL_DSTDOMAIN },
	{ "dstdom_regex",	ACL_DSTDOM_REGEX },
	{ "external",		ACL_EXTERNAL },
	{ "method",		ACL_METHOD },
	{ "proto",		ACL_PROTO },
	{ "ssl::server_name",	ACL_SSL_SERVER_NAME },
	{ "ssl::server_name_regex", ACL_SSL_SERVER_NAME_REGEX },
	{ "tls_sni_match",	ACL_TLS_SNI_MATCH },
	{ "proxy_auth",		ACL_PROXY_AUTH },
};

/* tls_sni_match's values: the line's sni_match, and no_hello */
static const char *const acl_sni_matches[] = {
	[PEEK_MATCH_NONE] = "no_hello",
	[PEEK_MATCH_MATCH] = "match",
	[PEEK_MATCH_MISMATCH] = "mismatch",
	[PEEK_MATCH_NO_SNI] = "no_sni",
	[PEEK_MATCH_ECH_OUTER] = "ech_outer",
	[PEEK_MATCH_IP_TARGET] = "ip_target",
};

/*
 * Squid 6's built-in acls (to_linklocal is new in 6; manager is inert),
 * and connectd's to_self: every address of this host's interfaces, kept
 * current (ifaddr.c), which to_localhost's loopback ranges do not cover.
 */
static const struct {
	const char	*pd_name;
	enum acl_type	 pd_type;
	const char	*pd_values;
} acl_predefined[] = {
	{ "all",		ACL_SRC,	"all" },
	{ "localhost",		ACL_SRC,	"127.0.0.1/32 ::1" },
	{ "to_localhost",	ACL_DST,	"127.0.0.0/8 0.0.0.0/32 ::1/128 "
						"::/128" },
	{ "to_linklocal",	ACL_DST,	"169.254.0.0/16 fe80::/10" },
	{ "to_self",		ACL_SELF,	"" },
	{ "CONNECT",		ACL_METHOD,	"CONNECT" },
	{ "manager",		ACL_NEVER,	"" },
};


static void	 acl_conf_release(struct acl_conf *);
static void	 acl_free(struct acl *);

static const char *const acl_implicit_none =
    "implicit deny (no http_access lines)";
static const char *const acl_implicit_allow =
    "implicit allow (opposite of the last http_access line)";
static const char *const acl_implicit_deny =
    "implicit deny (opposite of the last http_access line)";

static const char *
acl_type_name(enum acl_type t)
{
	size_t	 i;

	for (i = 0; i < nitems(acl_types); i++)
		if (acl_types[i].at_type == t)
			return acl_types[i].at_name;
	return t == ACL_SELF ? "to_self" : "manager";
}

static int
acl_grow(void *pp, size_t n, size_t size)
{
	void	**p = pp, *np;

	/* grow in powers of two: n is the count before the append */
	if (n != 0 && (n & (n - 1)) != 0)
		return 0;
	if ((np = reallocarray(*p, n == 0 ? 1 : n * 2, size)) == NULL)
		return -1;
	*p = np;
	return 0;
}

/* ------------------------------------------------------------ addresses */

static int
acl_proto_known(const char *v)
{
	static const char *const names[] = { "HTTP", "HTTPS", "FTP", "GOPHER",
	    "WAIS", "CACHE_OBJECT", "ICP", "HTCP", "URN", "WHOIS", "NONE" };
	size_t	 i;

	for (i = 0; i < nitems(names); i++)
		if (strcasecmp(v, names[i]) == 0)
			return 1;
	return 0;
}

static int
acl_key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct in6_addr));
}

/* IPv4 or IPv6 text as a 16-byte key (IPv4 as ::ffff:a.b.c.d) */
static int
acl_addr_parse(const char *s, uint8_t *dst, int *af)
{
	struct in6_addr	 key;

	if (addr_key_parse(s, &key, af) == -1)
		return -1;
	memcpy(dst, key.s6_addr, 16);
	return 0;
}

static void
acl_mask_bits(uint8_t *mask, unsigned bits)
{
	unsigned	 i;

	memset(mask, 0, 16);
	for (i = 0; i < 16 && bits > 0; i++) {
		mask[i] = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
		bits -= bits >= 8 ? 8 : bits;
	}
}

/* "/24", or "/255.255.255.0" for IPv4 */
static int
acl_mask_parse(const char *s, int af, uint8_t *mask)
{
	uint8_t		 m[16];
	unsigned long	 bits;
	char		*end;
	int		 maf, i, seen0 = 0;

	if (isdigit((unsigned char)s[0]) && strspn(s, "0123456789") ==
	    strlen(s)) {
		errno = 0;
		bits = strtoul(s, &end, 10);
		if (errno != 0 || strlen(s) > 3 ||
		    bits > (af == AF_INET ? 32UL : 128UL))
			return -1;
		acl_mask_bits(mask, (unsigned)bits + (af == AF_INET ? 96 : 0));
		return 0;
	}
	if (af != AF_INET || acl_addr_parse(s, m, &maf) == -1 ||
	    maf != AF_INET)
		return -1;
	/* a dotted mask must be contiguous ones */
	for (i = 12; i < 16; i++) {
		if (seen0 && m[i] != 0)
			return -1;
		if (m[i] != 0xff) {
			if ((uint8_t)(~m[i] & (uint8_t)(~m[i] + 1)) != 0)
				return -1;
			seen0 = 1;
		}
	}
	memset(mask, 0xff, 12);
	memcpy(mask + 12, m + 12, 4);
	return 0;
}

/* all, ADDR, ADDR/MASK, ADDR-ADDR or ADDR-ADDR/MASK, as Squid takes them */
static int
acl_net_parse(const char *value, struct acl_net *n, char *err,
    size_t errlen)
{
	char	 buf[INET6_ADDRSTRLEN * 2 + 48], *slash, *dash;
	int	 af, af2, i;

	if (strcmp(value, "all") == 0) {
		memset(n->an_lo, 0, 16);
		memset(n->an_hi, 0xff, 16);
		memset(n->an_mask, 0xff, 16);
		return 0;
	}
	if (strlen(value) >= sizeof(buf))
		goto bad;
	snprintf(buf, sizeof(buf), "%s", value);
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if ((dash = strchr(buf, '-')) != NULL)
		*dash++ = '\0';
	if (acl_addr_parse(buf, n->an_lo, &af) == -1)
		goto bad;
	if (dash != NULL) {
		if (acl_addr_parse(dash, n->an_hi, &af2) == -1)
			goto bad;
		if (af2 != af) {
			snprintf(err, errlen, "'%s': both ends of a range must "
			    "be IPv4 or both IPv6", value);
			return -1;
		}
	}
	if (slash != NULL) {
		if (acl_mask_parse(slash, af, n->an_mask) == -1) {
			snprintf(err, errlen, "bad netmask in '%s'", value);
			return -1;
		}
	} else
		memset(n->an_mask, 0xff, 16);
	if (dash == NULL) {
		/* a network: bits outside the mask are dropped, as Squid does */
		for (i = 0; i < 16; i++) {
			n->an_lo[i] &= n->an_mask[i];
			n->an_hi[i] = n->an_lo[i] | (uint8_t)~n->an_mask[i];
		}
		memset(n->an_mask, 0xff, 16);
	} else {
		for (i = 0; i < 16; i++) {
			n->an_lo[i] &= n->an_mask[i];
			n->an_hi[i] &= n->an_mask[i];
		}
		if (memcmp(n->an_lo, n->an_hi, 16) > 0) {
			snprintf(err, errlen, "'%s': the range ends before it "
			    "starts", value);
			return -1;
		}
	}
	return 0;
 bad:
	snprintf(err, errlen, "'%s' is not an IP address, network or range "
	    "(host names are not resolved)", value);
	return -1;
}

static int
acl_net_match(const struct acl *a, const uint8_t *addr)
{
	const struct acl_net	*n;
	uint8_t			 x[16];
	size_t			 i;
	int			 j;

	for (i = 0; i < a->a_nnets; i++) {
		n = &a->a_nets[i];
		for (j = 0; j < 16; j++)
			x[j] = addr[j] & n->an_mask[j];
		if (memcmp(x, n->an_lo, 16) >= 0 &&
		    memcmp(x, n->an_hi, 16) <= 0)
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------------ dstdomain */

/* Lower case, without trailing dots; 0 if nothing is left. */
static size_t
acl_host_norm(const char *s, char *dst, size_t dstlen)
{
	size_t	 len, i;

	len = strlen(s);
	while (len > 0 && s[len - 1] == '.')
		len--;
	if (len >= dstlen)
		return 0;
	for (i = 0; i < len; i++)
		dst[i] = (char)tolower((unsigned char)s[i]);
	dst[len] = '\0';
	return len;
}

static int
acl_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
acl_in(char **set, size_t n, const char *s)
{
	return n > 0 && bsearch(&s, set, n, sizeof(*set), acl_strcmp) != NULL;
}

static int
acl_domain_match(const struct acl *a, const char *host)
{
	char		 h[HOST_NAME_MAX_LEN + 2];
	const char	*p;

	if (acl_host_norm(host, h, sizeof(h)) == 0)
		return 0;
	if (acl_in(a->a_strs, a->a_nstrs, h) ||
	    acl_in(a->a_dots, a->a_ndots, h))
		return 1;
	for (p = strchr(h, '.'); p != NULL; p = strchr(p + 1, '.'))
		if (acl_in(a->a_dots, a->a_ndots, p + 1))
			return 1;
	return 0;
}

static int
acl_regex_match(const struct acl_conf *ac, const struct acl *a,
    const char *host)
{
	char	 h[HOST_NAME_MAX_LEN + 2];
	size_t	 i, len;

	len = strlen(host);
	while (len > 0 && host[len - 1] == '.')
		len--;
	if (len >= sizeof(h))
		return 0;
	memcpy(h, host, len);
	h[len] = '\0';
	for (i = 0; i < a->a_nregexes; i++)
		if (pcre2_match(a->a_regexes[i].rx_code, (PCRE2_SPTR)h, len, 0,
		    0, ac->ac_match, NULL) >= 0)
			return 1;
	return 0;
}

/* --------------------------------------------------------------- values */

static int
acl_add_value(struct acl_conf *ac, struct acl *a, const char *v,
    int caseless, char *err, size_t errlen)
{
	struct acl_net	 n;
	unsigned long	 lo, hi;
	char		*end, *s, h[HOST_NAME_MAX_LEN + 2];
	const char	*base;
	pcre2_code	*code;
	PCRE2_SIZE	 off;
	int		 rc;

	switch (a->a_type) {
	case ACL_SRC:
	case ACL_DST:
		if (acl_net_parse(v, &n, err, errlen) == -1)
			return -1;
		if (acl_grow(&a->a_nets, a->a_nnets, sizeof(n)) == -1)
			goto nomem;
		a->a_nets[a->a_nnets++] = n;
		return 0;
	case ACL_PORT:
		if (!isdigit((unsigned char)v[0]))
			goto badport;
		errno = 0;
		lo = hi = strtoul(v, &end, 10);
		if (*end == '-') {
			if (!isdigit((unsigned char)end[1]))
				goto badport;
			hi = strtoul(end + 1, &end, 10);
		}
		if (*end != '\0' || errno != 0 || lo > 65535 || hi > 65535)
			goto badport;
		if (lo > hi) {
			snprintf(err, errlen, "port range '%s' ends before it "
			    "starts", v);
			return -1;
		}
		if (acl_grow(&a->a_ranges, a->a_nranges,
		    sizeof(*a->a_ranges)) == -1)
			goto nomem;
		a->a_ranges[a->a_nranges].ar_lo = (unsigned)lo;
		a->a_ranges[a->a_nranges++].ar_hi = (unsigned)hi;
		return 0;
	case ACL_DSTDOMAIN:
	case ACL_SSL_SERVER_NAME:
		base = v[0] == '.' ? v + 1 : v;
		if (v[0] == '[' && v[strlen(v) - 1] == ']') {
			/* an IPv6 literal, compared as the host without [] */
			if (strlen(v) < 3 || strlen(v) > sizeof(h))
				goto baddomain;
			memcpy(h, v + 1, strlen(v) - 2);
			h[strlen(v) - 2] = '\0';
		} else if (acl_host_norm(base, h, sizeof(h)) == 0)
			goto baddomain;
		if ((s = strdup(h)) == NULL)
			goto nomem;
		if (v[0] == '.') {
			if (acl_grow(&a->a_dots, a->a_ndots,
			    sizeof(*a->a_dots)) == -1) {
				free(s);
				goto nomem;
			}
			a->a_dots[a->a_ndots++] = s;
		} else {
			if (acl_grow(&a->a_strs, a->a_nstrs,
			    sizeof(*a->a_strs)) == -1) {
				free(s);
				goto nomem;
			}
			a->a_strs[a->a_nstrs++] = s;
		}
		return 0;
	case ACL_DSTDOM_REGEX:
	case ACL_SSL_SERVER_NAME_REGEX:
		code = pcre2_compile((PCRE2_SPTR)v, PCRE2_ZERO_TERMINATED,
		    caseless ? PCRE2_CASELESS : 0, &rc, &off, NULL);
		if (code == NULL) {
			pcre2_get_error_message(rc, (PCRE2_UCHAR *)h,
			    sizeof(h));
			snprintf(err, errlen, "bad regular expression '%s': %s "
			    "at offset %zu", v, h, (size_t)off);
			return -1;
		}
		/* without JIT (e.g. no executable memory) it still works */
		(void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
		if (acl_grow(&a->a_regexes, a->a_nregexes,
		    sizeof(*a->a_regexes)) == -1) {
			pcre2_code_free(code);
			goto nomem;
		}
		a->a_regexes[a->a_nregexes++].rx_code = code;
		if (ac->ac_match == NULL &&
		    (ac->ac_match = pcre2_match_data_create(1, NULL)) == NULL)
			goto nomem;
		return 0;
	case ACL_PROXY_AUTH:
		/* Squid: REQUIRED (any user the helper accepts) or names */
		if (strcmp(v, "REQUIRED") == 0) {
			a->a_required = 1;
			return 0;
		}
		goto str;
	case ACL_TLS_SNI_MATCH:
		for (lo = 0; lo < nitems(acl_sni_matches); lo++)
			if (strcmp(v, acl_sni_matches[lo]) == 0)
				break;
		if (lo == nitems(acl_sni_matches)) {
			snprintf(err, errlen, "'%s' is not an sni_match (match, "
			    "mismatch, no_sni, ech_outer, ip_target, no_hello)",
			    v);
			return -1;
		}
		goto str;
	case ACL_PROTO:
		/* Squid's names (anyp/ProtocolType.h); connectd sees HTTP and
		 * NONE (a CONNECT), the others never match */
		if (!acl_proto_known(v)) {
			snprintf(err, errlen, "'%s' is not a protocol (HTTP, "
			    "HTTPS, FTP, NONE, ...)", v);
			return -1;
		}
		/* FALLTHROUGH */
	case ACL_METHOD:
 str:
		if ((s = strdup(v)) == NULL)
			goto nomem;
		if (acl_grow(&a->a_strs, a->a_nstrs, sizeof(*a->a_strs)) ==
		    -1) {
			free(s);
			goto nomem;
		}
		a->a_strs[a->a_nstrs++] = s;
		return 0;
	case ACL_EXTERNAL:
	case ACL_SELF:
	case ACL_NEVER:
		break;
	}
	snprintf(err, errlen, "acl type %s takes no values",
	    acl_type_name(a->a_type));
	return -1;
 badport:
	snprintf(err, errlen, "'%s' is not a port (0-65535) or a range like "
	    "1-1024", v);
	return -1;
 baddomain:
	snprintf(err, errlen, "'%s' is not a domain name", v);
	return -1;
 nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* "/path" or parameters("/path"): the path, else NULL */
static char *
acl_file_path(const char *v, char *buf, size_t buflen)
{
	size_t	 len = strlen(v);

	if (len >= 3 && v[0] == '"' && v[len - 1] == '"') {
		if (len - 1 > buflen)
			return NULL;
		memcpy(buf, v + 1, len - 2);
		buf[len - 2] = '\0';
		return buf;
	}
	if (strncmp(v, "parameters(\"", 12) == 0 && len >= 15 &&
	    strcmp(v + len - 2, "\")") == 0) {
		if (len - 13 > buflen)
			return NULL;
		memcpy(buf, v + 12, len - 14);
		buf[len - 14] = '\0';
		return buf;
	}
	return NULL;
}

/*
 * One value per word, as Squid reads them; a line that starts with '#'
 * is a comment.  -i and +i switch caselessness for the regexes after them.
 */
static int
acl_add_file(struct acl_conf *ac, struct acl *a, const char *path,
    int *caseless, char *err, size_t errlen)
{
	struct stat	 st;
	FILE		*fp;
	char		*line = NULL, *w, *last, msg[ERRBUF_LEN];
	size_t		 cap = 0, lineno = 0, nvalues = 0;
	ssize_t		 n;
	int		 rv = -1;

	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "cannot read acl values from %s: %s",
		    path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > ACL_FILE_MAX_SIZE) {
		snprintf(err, errlen, "cannot read acl values from %s: not a "
		    "regular file of at most 64 MB", path);
		fclose(fp);
		return -1;
	}
	while ((n = getline(&line, &cap, fp)) != -1) {
		lineno++;
		if (memchr(line, '\0', (size_t)n) != NULL) {
			snprintf(err, errlen, "%s:%zu: NUL byte in line", path,
			    lineno);
			goto fail;
		}
		w = line + strspn(line, " \t\r\n\f\v");
		if (*w == '#')
			continue;
		for (w = strtok_r(w, " \t\r\n\f\v", &last); w != NULL;
		    w = strtok_r(NULL, " \t\r\n\f\v", &last)) {
			if (a->a_type == ACL_DSTDOM_REGEX &&
			    (strcmp(w, "-i") == 0 || strcmp(w, "+i") == 0)) {
				*caseless = w[0] == '-';
				continue;
			}
			if (++nvalues > ACL_FILE_MAX_VALUES) {
				snprintf(err, errlen, "%s: more than %d values",
				    path, ACL_FILE_MAX_VALUES);
				goto fail;
			}
			if (acl_add_value(ac, a, w, *caseless, msg,
			    sizeof(msg)) == -1) {
				snprintf(err, errlen, "%s:%zu: %s", path,
				    lineno, msg);
				goto fail;
			}
		}
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "cannot read acl values from %s: %s",
		    path, strerror(errno));
		goto fail;
	}
	rv = 0;
 fail:
	free(line);
	fclose(fp);
	return rv;
}

/* ------------------------------------------------------------ the conf */

/* Squid's acl names are case-insensitive: the hash of the lower case */
static uint64_t
acl_name_hash(const char *name)
{
	char	 low[ACL_NAME_MAX + 1];
	size_t	 i;

	for (i = 0; i < ACL_NAME_MAX && name[i] != '\0'; i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	return hash_bytes(low, i);
}

static int
acl_name_match(const struct hnode *n, const void *name)
{
	return strcasecmp(container_of(n, struct acl, a_node)->a_name,
	    name) == 0;
}

static struct acl *
acl_find(struct acl_conf *ac, const char *name)
{
	struct hnode	*n;

	if (strlen(name) > ACL_NAME_MAX ||
	    (n = htab_find(&ac->ac_names, acl_name_hash(name), acl_name_match,
	    name)) == NULL)
		return NULL;
	return container_of(n, struct acl, a_node);
}

/* Take a out of the conf and free it. */
static void
acl_remove(struct acl_conf *ac, struct acl *a)
{
	TAILQ_REMOVE(&ac->ac_acls, a, a_entry);
	htab_remove(&ac->ac_names, &a->a_node);
	acl_free(a);
}

static void
acl_free(struct acl *a)
{
	size_t	 i;

	for (i = 0; i < a->a_nstrs; i++)
		free(a->a_strs[i]);
	for (i = 0; i < a->a_ndots; i++)
		free(a->a_dots[i]);
	for (i = 0; i < a->a_nregexes; i++)
		pcre2_code_free(a->a_regexes[i].rx_code);
	free(a->a_strs);
	free(a->a_dots);
	free(a->a_regexes);
	free(a->a_nets);
	free(a->a_ranges);
	free(a->a_helper);
	free(a->a_data);
	free(a->a_name);
	free(a);
}

static struct acl *
acl_new(struct acl_conf *ac, const char *name, enum acl_type type)
{
	struct acl	*a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	if ((a->a_name = strdup(name)) == NULL) {
		free(a);
		return NULL;
	}
	a->a_type = type;
	TAILQ_INSERT_TAIL(&ac->ac_acls, a, a_entry);
	htab_insert(&ac->ac_names, &a->a_node, acl_name_hash(name));
	return a;
}

static struct acl_conf *
acl_conf_new(char *err, size_t errlen)
{
	struct acl_conf	*ac;
	struct acl	*a;
	char		 buf[128], *w, *last;
	size_t		 i;

	if ((ac = calloc(1, sizeof(*ac))) == NULL)
		goto nomem;
	TAILQ_INIT(&ac->ac_acls);
	if (htab_init(&ac->ac_names, 64) == -1) {
		free(ac);
		goto nomem;
	}
	TAILQ_INIT(&ac->ac_rules);
	TAILQ_INIT(&ac->ac_lines);
	for (i = 0; i < nitems(acl_predefined); i++) {
		if ((a = acl_new(ac, acl_predefined[i].pd_name,
		    acl_predefined[i].pd_type)) == NULL)
			goto nomem;
		a->a_predefined = 1;
		snprintf(buf, sizeof(buf), "%s", acl_predefined[i].pd_values);
		for (w = strtok_r(buf, " ", &last); w != NULL;
		    w = strtok_r(NULL, " ", &last))
			if (acl_add_value(ac, a, w, 0, err, errlen) == -1)
				goto fail;
	}
	return ac;
 nomem:
	snprintf(err, errlen, "out of memory");
 fail:
	acl_conf_release(ac);
	return NULL;
}

static int
acl_name_ok(const char *s)
{
	size_t	 len = strlen(s);

	return len > 0 && len <= ACL_NAME_MAX && (isalnum((unsigned char)*s) ||
	    *s == '_') && strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:") == len;
}

static char *
acl_join(int argc, char **argv)
{
	size_t	 len = 0, n;
	char	*s;
	int	 i;

	for (i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if ((s = calloc(1, len + 1)) == NULL)
		return NULL;
	for (i = 0, len = 0; i < argc; i++) {
		if (i > 0)
			s[len++] = ' ';
		n = strlen(argv[i]);
		memcpy(s + len, argv[i], n);
		len += n;
	}
	return s;
}

/* acl NAME TYPE [-i] [-n] VALUE ... */
static int
acl_parse_acl(struct acl_conf *ac, size_t lineno, int argc, char **argv,
    char *err, size_t errlen)
{
	struct acl	*a;
	enum acl_type	 type;
	char		 path[1024];
	size_t		 i;
	int		 j, caseless = 0, nvalues = 0, fresh = 0;

	if (argc < 3) {
		snprintf(err, errlen, "usage: acl NAME TYPE [-i] VALUE ...");
		return -1;
	}
	if (!acl_name_ok(argv[1])) {
		snprintf(err, errlen, "bad acl name '%s' (letters, digits and "
		    "_-.: only, at most %d)", argv[1], ACL_NAME_MAX);
		return -1;
	}
	for (i = 0; i < nitems(acl_types); i++)
		if (strcmp(acl_types[i].at_name, argv[2]) == 0)
			break;
	if (i == nitems(acl_types)) {
		snprintf(err, errlen, "unknown acl type '%s' (supported: src, "
		    "dst, port, dstdomain, dstdom_regex, external, method, "
		    "proto, ssl::server_name, ssl::server_name_regex, "
		    "tls_sni_match, proxy_auth)", argv[2]);
		return -1;
	}
	type = acl_types[i].at_type;
	if ((a = acl_find(ac, argv[1])) != NULL) {
		if (a->a_type != type) {
			snprintf(err, errlen, "acl '%s' already exists with "
			    "type %s", a->a_name, acl_type_name(a->a_type));
			return -1;
		}
		if (type == ACL_EXTERNAL) {
			snprintf(err, errlen, "external acl '%s' is already "
			    "defined", a->a_name);
			return -1;
		}
	} else {
		if ((a = acl_new(ac, argv[1], type)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		a->a_lineno = lineno;
		fresh = 1;
	}

	if (type == ACL_EXTERNAL) {
		if (argc < 4 || !acl_name_ok(argv[3])) {
			snprintf(err, errlen, "usage: acl NAME external "
			    "EXTERNAL_ACL_TYPE [ARGUMENT ...]");
			goto fail;
		}
		if ((a->a_helper = strdup(argv[3])) == NULL ||
		    (argc > 4 && (a->a_data = acl_join(argc - 4, argv + 4)) ==
		    NULL)) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		return 0;
	}

	for (j = 3; j < argc; j++) {
		if (strcmp(argv[j], "-i") == 0 || strcmp(argv[j], "+i") == 0) {
			if (type != ACL_DSTDOM_REGEX && type != ACL_DSTDOMAIN &&
			    type != ACL_SSL_SERVER_NAME &&
			    type != ACL_SSL_SERVER_NAME_REGEX)
				goto badflag;
			caseless = argv[j][0] == '-';
			continue;
		}
		if (strcmp(argv[j], "-n") == 0) {
			/* no reverse lookups: connectd never makes them */
			if (type != ACL_DSTDOMAIN && type != ACL_DSTDOM_REGEX)
				goto badflag;
			continue;
		}
		if (strcmp(argv[j], "--") == 0)
			continue;
		if (argv[j][0] == '-' && type != ACL_PORT &&
		    !isdigit((unsigned char)argv[j][1]))
			goto badflag;
		nvalues++;
		if (acl_file_path(argv[j], path, sizeof(path)) != NULL) {
			if (acl_add_file(ac, a, path, &caseless, err,
			    errlen) == -1)
				goto fail;
		} else if (argv[j][0] == '"' ||
		    strncmp(argv[j], "parameters(", 11) == 0) {
			snprintf(err, errlen, "bad file reference %s (use "
			    "\"/path\" or parameters(\"/path\"))", argv[j]);
			goto fail;
		} else if (acl_add_value(ac, a, argv[j], caseless, err,
		    errlen) == -1)
			goto fail;
	}
	if (nvalues == 0) {
		snprintf(err, errlen, "acl '%s' has no values", argv[1]);
		goto fail;
	}
	return 0;
 badflag:
	snprintf(err, errlen, "option '%s' is not supported for acl type %s",
	    argv[j], argv[2]);
 fail:
	if (fresh)
		acl_remove(ac, a);
	return -1;
}

/* http_access allow|deny [!]ACL ... */
static int
acl_parse_access(struct acl_conf *ac, int argc, char **argv, char *err,
    size_t errlen)
{
	struct acl_rule	*ru;
	struct acl	*a;
	const char	*name;
	int		 i;

	if (argc < 3 || (strcmp(argv[1], "allow") != 0 &&
	    strcmp(argv[1], "deny") != 0)) {
		snprintf(err, errlen, "usage: http_access allow|deny [!]ACL "
		    "...");
		return -1;
	}
	if ((ru = calloc(1, sizeof(*ru))) == NULL ||
	    (ru->ru_terms = calloc(argc - 2, sizeof(*ru->ru_terms))) == NULL)
		goto nomem;
	ru->ru_allow = strcmp(argv[1], "allow") == 0;
	for (i = 2; i < argc; i++) {
		name = argv[i][0] == '!' ? argv[i] + 1 : argv[i];
		if ((a = acl_find(ac, name)) == NULL) {
			snprintf(err, errlen, "acl '%s' is not defined (an acl "
			    "must be defined above its first use)", name);
			goto fail;
		}
		ru->ru_terms[ru->ru_nterms].at_acl = a;
		ru->ru_terms[ru->ru_nterms++].at_negate = argv[i][0] == '!';
	}
	if ((ru->ru_text = acl_join(argc, argv)) == NULL)
		goto nomem;
	TAILQ_INSERT_TAIL(&ac->ac_rules, ru, ru_entry);
	return 0;
 nomem:
	snprintf(err, errlen, "out of memory");
 fail:
	if (ru != NULL)
		free(ru->ru_terms);
	free(ru);
	return -1;
}

int
acl_conf_directive(struct conf *c, size_t lineno, int argc, char **argv,
    char *err, size_t errlen)
{
	struct acl_line	*al;
	int		 rv;

	if (c->c_acl == NULL && (c->c_acl = acl_conf_new(err, errlen)) == NULL)
		return -1;
	if (strcasecmp(argv[0], "acl") == 0)
		rv = acl_parse_acl(c->c_acl, lineno, argc, argv, err, errlen);
	else if (strcasecmp(argv[0], "http_access") == 0)
		rv = acl_parse_access(c->c_acl, argc, argv, err, errlen);
	else {
		snprintf(err, errlen, "%s is not an acl directive", argv[0]);
		return -1;
	}
	if (rv == -1)
		return -1;
	if ((al = calloc(1, sizeof(*al))) == NULL ||
	    (al->al_text = acl_join(argc, argv)) == NULL) {
		free(al);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	TAILQ_INSERT_TAIL(&c->c_acl->ac_lines, al, al_entry);
	return 0;
}

/*
 * Every external acl names an external_acl_type; the domain lists are
 * sorted, and "x" beside ".x" is an error, as in Squid 5.
 */
int
acl_conf_finish(struct conf *c, size_t *lineno, char *err, size_t errlen)
{
	struct acl	*a;
	size_t		 i;

	if (c->c_acl == NULL)
		return 0;
	TAILQ_FOREACH(a, &c->c_acl->ac_acls, a_entry) {
		*lineno = a->a_lineno;
		if (a->a_type == ACL_EXTERNAL &&
		    !helper_conf_exists(c, a->a_helper)) {
			snprintf(err, errlen, "acl %s: external_acl_type '%s' "
			    "is not defined", a->a_name, a->a_helper);
			return -1;
		}
		/* helper_conf_finish() has checked that tls_peek is on */
		if (a->a_type == ACL_EXTERNAL)
			a->a_hello = helper_conf_needs_hello(c, a->a_helper);
		if (a->a_type == ACL_PROXY_AUTH && helper_conf_auth(c) ==
		    NULL) {
			snprintf(err, errlen, "acl %s: type proxy_auth needs an "
			    "'auth_param basic program' line", a->a_name);
			return -1;
		}
		if ((a->a_type == ACL_TLS_SNI_MATCH ||
		    a->a_type == ACL_SSL_SERVER_NAME ||
		    a->a_type == ACL_SSL_SERVER_NAME_REGEX) && !c->c_tls_peek) {
			/* the hello is read by tls_peek's reader */
			snprintf(err, errlen, "acl %s: type %s needs tls_peek "
			    "on", a->a_name, acl_type_name(a->a_type));
			return -1;
		}
		if (a->a_type != ACL_DSTDOMAIN &&
		    a->a_type != ACL_SSL_SERVER_NAME)
			continue;
		if (a->a_nstrs > 0)
			qsort(a->a_strs, a->a_nstrs, sizeof(*a->a_strs),
			    acl_strcmp);
		if (a->a_ndots > 0)
			qsort(a->a_dots, a->a_ndots, sizeof(*a->a_dots),
			    acl_strcmp);
		for (i = 0; i < a->a_nstrs; i++)
			if (acl_in(a->a_dots, a->a_ndots, a->a_strs[i])) {
				snprintf(err, errlen, "acl %s: '%s' is already "
				    "matched by '.%s'; remove one of them",
				    a->a_name, a->a_strs[i], a->a_strs[i]);
				return -1;
			}
	}
	*lineno = 0;
	return 0;
}

void
acl_conf_dump(const struct conf *c, FILE *fp)
{
	struct acl_line	*al;

	if (c->c_acl == NULL)
		return;
	TAILQ_FOREACH(al, &c->c_acl->ac_lines, al_entry)
		fprintf(fp, "%s\n", al->al_text);
}

void
acl_conf_free(struct conf *c)
{
	acl_conf_release(c->c_acl);
	c->c_acl = NULL;
}

static void
acl_conf_release(struct acl_conf *ac)
{
	struct acl	*a;
	struct acl_rule	*ru;
	struct acl_line	*al;

	if (ac == NULL)
		return;
	while ((a = TAILQ_FIRST(&ac->ac_acls)) != NULL)
		acl_remove(ac, a);
	htab_free(&ac->ac_names);
	while ((ru = TAILQ_FIRST(&ac->ac_rules)) != NULL) {
		TAILQ_REMOVE(&ac->ac_rules, ru, ru_entry);
		free(ru->ru_terms);
		free(ru->ru_text);
		free(ru);
	}
	while ((al = TAILQ_FIRST(&ac->ac_lines)) != NULL) {
		TAILQ_REMOVE(&ac->ac_lines, al, al_entry);
		free(al->al_text);
		free(al);
	}
	pcre2_match_data_free(ac->ac_match);
	free(ac);
}

/* ---------------------------------------------------------------- check */

static enum acl_match
acl_addr_match(const struct acl *a, const struct sockaddr_storage *ss)
{
	struct in6_addr	 key;

	if (addr_key(ss, &key) == -1)
		return ACL_NO;
	return acl_net_match(a, key.s6_addr) ? ACL_YES : ACL_NO;
}

static int
acl_self_match(const struct acl_request *ar, const struct in6_addr *key)
{
	return ar->ar_nself > 0 && bsearch(key, ar->ar_self, ar->ar_nself,
	    sizeof(*key), acl_key_cmp) != NULL;
}

/*
 * A destination address for dst and to_self: the address, and the IPv4
 * address it carries if it is one of the IPv6 forms that lead to one
 * (NAT64, 6to4, IPv4-compatible), so that [64:ff9b::a.b.c.d] is checked
 * as a.b.c.d too.
 */
static int
acl_dst_key(const struct acl *a, const struct acl_request *ar,
    const struct in6_addr *key)
{
	struct in6_addr	 v4;
	int		 embedded;

	embedded = addr_key_embedded_v4(key, &v4);
	if (a->a_type == ACL_SELF)
		return acl_self_match(ar, key) ||
		    (embedded && acl_self_match(ar, &v4));
	return acl_net_match(a, key->s6_addr) ||
	    (embedded && acl_net_match(a, v4.s6_addr));
}

/* dst and to_self: the host if it is an address, else what it resolved to */
static enum acl_match
acl_dst_match(const struct acl *a, const struct acl_request *ar)
{
	struct in6_addr	 key;
	size_t		 i;

	/* an address as host is its own address, known before any DNS */
	if (ar->ar_host != NULL && addr_key_parse(ar->ar_host, &key, NULL) == 0)
		return acl_dst_key(a, ar, &key) ? ACL_YES : ACL_NO;
	if (ar->ar_addrs == NULL)
		return ACL_UNKNOWN;
	for (i = 0; i < ar->ar_naddrs; i++)
		if (addr_key(&ar->ar_addrs[i], &key) == 0 &&
		    acl_dst_key(a, ar, &key))
			return ACL_YES;
	return ACL_NO;
}

static enum acl_match
acl_match(const struct acl_conf *ac, const struct acl *a,
    const struct acl_request *ar)
{
	const char	*name;
	size_t		 i;

	switch (a->a_type) {
	case ACL_SRC:
		return acl_addr_match(a, ar->ar_client);
	case ACL_DST:
	case ACL_SELF:
		return acl_dst_match(a, ar);
	case ACL_PORT:
		for (i = 0; i < a->a_nranges; i++)
			if ((unsigned)ar->ar_port >= a->a_ranges[i].ar_lo &&
			    (unsigned)ar->ar_port <= a->a_ranges[i].ar_hi)
				return ACL_YES;
		return ACL_NO;
	case ACL_DSTDOMAIN:
		return ar->ar_host != NULL && acl_domain_match(a,
		    ar->ar_host) ? ACL_YES : ACL_NO;
	case ACL_DSTDOM_REGEX:
		return ar->ar_host != NULL && acl_regex_match(ac, a,
		    ar->ar_host) ? ACL_YES : ACL_NO;
	case ACL_SSL_SERVER_NAME:
	case ACL_SSL_SERVER_NAME_REGEX:
		if (!ar->ar_hello)
			return ACL_HELLO;
		/*
		 * Squid's name at step 2 (SslBump peek, the default
		 * --client-requested source): the SNI, else the CONNECT
		 * host when the hello names none or there is no hello.
		 */
		name = ar->ar_sni != NULL ? ar->ar_sni : ar->ar_host;
		if (name == NULL)
			return ACL_NO;
		if (a->a_type == ACL_SSL_SERVER_NAME)
			return acl_domain_match(a, name) ? ACL_YES : ACL_NO;
		return acl_regex_match(ac, a, name) ? ACL_YES : ACL_NO;
	case ACL_TLS_SNI_MATCH:
		if (!ar->ar_hello)
			return ACL_HELLO;
		if (ar->ar_sni_match < 0 ||
		    (size_t)ar->ar_sni_match >= nitems(acl_sni_matches))
			return ACL_NO;
		for (i = 0; i < a->a_nstrs; i++)
			if (strcmp(a->a_strs[i],
			    acl_sni_matches[ar->ar_sni_match]) == 0)
				return ACL_YES;
		return ACL_NO;
	case ACL_METHOD:
		for (i = 0; ar->ar_method != NULL && i < a->a_nstrs; i++)
			if (strcmp(ar->ar_method, a->a_strs[i]) == 0)
				return ACL_YES;
		return ACL_NO;
	case ACL_PROTO:
		/* Squid 5.7: a CONNECT request's protocol is NONE */
		for (i = 0; i < a->a_nstrs; i++)
			if (strcasecmp(a->a_strs[i], ar->ar_scheme != NULL ?
			    ar->ar_scheme : "NONE") == 0)
				return ACL_YES;
		return ACL_NO;
	case ACL_PROXY_AUTH:
		/* no credential: no; else the helper's OK, then the name */
		if (ar->ar_cred == NULL || ar->ar_external == NULL)
			return ACL_NO;
		switch (ar->ar_external(ar->ar_arg, HELPER_AUTH_NAME,
		    ar->ar_cred)) {
		case 1:
			break;
		case -1:
			return ACL_UNKNOWN;
		default:
			return ACL_NO;
		}
		if (a->a_required)
			return ACL_YES;
		for (i = 0; ar->ar_user != NULL && i < a->a_nstrs; i++)
			if (strcmp(ar->ar_user, a->a_strs[i]) == 0)
				return ACL_YES;
		return ACL_NO;
	case ACL_EXTERNAL:
		if (ar->ar_external == NULL)
			return ACL_NO;
		/*
		 * %ssl::>sni: asked at the CONNECT with "-", as Squid's
		 * http_access asks before any SslBump step.  An ERR then is
		 * final, so that a host the helper refuses gets its 403 at
		 * once: the SNI can only narrow what the host is allowed
		 * (podmeta --policy).  An OK is asked again once the hello
		 * is read, with the client's bytes held (conn_hello()).
		 */
		switch (ar->ar_external(ar->ar_arg, a->a_helper, a->a_data)) {
		case 1:
			return a->a_hello && !ar->ar_hello ? ACL_HELLO :
			    ACL_YES;
		case -1:
			return ACL_UNKNOWN;
		default:
			return ACL_NO;
		}
	case ACL_NEVER:
		break;
	}
	return ACL_NO;
}

/* AND of the terms, left to right; a sure mismatch ends it early. */
static enum acl_match
acl_rule_match(const struct acl_conf *ac, const struct acl_rule *ru,
    const struct acl_request *ar)
{
	enum acl_match	 m, res = ACL_YES;
	size_t		 i;

	for (i = 0; i < ru->ru_nterms; i++) {
		m = acl_match(ac, ru->ru_terms[i].at_acl, ar);
		if (m != ACL_UNKNOWN && m != ACL_HELLO &&
		    ru->ru_terms[i].at_negate)
			m = m == ACL_YES ? ACL_NO : ACL_YES;
		if (m == ACL_NO)
			return ACL_NO;
		/* a helper or DNS is waited for before the hello */
		if (m == ACL_UNKNOWN)
			res = ACL_UNKNOWN;
		else if (m == ACL_HELLO && res == ACL_YES)
			res = ACL_HELLO;
	}
	return res;
}

/*
 * First match wins.  A line that cannot be decided yet (a dst acl before
 * DNS, a helper still on its way) holds up the lines after it, unless
 * every undecided line above the first sure match has that line's action:
 * then the answer cannot change, and a denial needs no DNS query.  A line
 * that waits only for the ClientHello is undecided the same way, but is
 * waited for last: ACL_HOLD once nothing else is missing, so that the
 * tunnel is opened with the client's first bytes held (conn.c), and only
 * when such a line could change the answer.
 */
enum acl_verdict
acl_check(const struct acl_conf *ac, const struct acl_request *ar,
    const char **rule)
{
	const struct acl_rule	*ru, *last = NULL;
	enum acl_match		 m;
	int			 unknown_allow = 0, unknown_deny = 0, allow;
	int			 hello_allow = 0, hello_deny = 0;

	*rule = acl_implicit_none;
	if (ac == NULL || TAILQ_EMPTY(&ac->ac_rules))
		return ACL_DENY;
	TAILQ_FOREACH(ru, &ac->ac_rules, ru_entry) {
		last = ru;
		m = acl_rule_match(ac, ru, ar);
		if (m == ACL_NO)
			continue;
		if (m == ACL_UNKNOWN || m == ACL_HELLO) {
			if (m == ACL_HELLO)
				*(ru->ru_allow ? &hello_allow : &hello_deny) = 1;
			else if (ru->ru_allow)
				unknown_allow = 1;
			else
				unknown_deny = 1;
			continue;
		}
		if ((ru->ru_allow && (unknown_deny || hello_deny)) ||
		    (!ru->ru_allow && (unknown_allow || hello_allow)))
			return unknown_allow || unknown_deny ? ACL_WAIT :
			    ACL_HOLD;
		*rule = ru->ru_text;
		return ru->ru_allow ? ACL_ALLOW : ACL_DENY;
	}
	allow = !last->ru_allow;
	if ((allow && (unknown_deny || hello_deny)) ||
	    (!allow && (unknown_allow || hello_allow)))
		return unknown_allow || unknown_deny ? ACL_WAIT : ACL_HOLD;
	*rule = allow ? acl_implicit_allow : acl_implicit_deny;
	return allow ? ACL_ALLOW : ACL_DENY;
}

/*
 * Does a denial by rule (as acl_check() gave it) ask for credentials?
 * As Squid: when the last acl of the deciding line is a proxy_auth one
 * (for the implicit rule, the last line's), the answer is 407 with
 * Proxy-Authenticate, so the client can try again with a credential.
 */
int
acl_challenges(const struct acl_conf *ac, const char *rule)
{
	const struct acl_rule	*ru, *found = NULL;

	if (ac == NULL || TAILQ_EMPTY(&ac->ac_rules))
		return 0;
	if (rule == acl_implicit_deny)
		found = TAILQ_LAST(&ac->ac_rules, acl_rules);
	else
		TAILQ_FOREACH(ru, &ac->ac_rules, ru_entry)
			if (ru->ru_text == rule) {
				found = ru;
				break;
			}
	return found != NULL && found->ru_nterms > 0 &&
	    found->ru_terms[found->ru_nterms - 1].at_acl->a_type ==
	    ACL_PROXY_AUTH;
}
