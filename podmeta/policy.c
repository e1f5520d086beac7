/* policy.c: egress allow-lists from pod and namespace annotations: parse, resolve, match, answer */
#include <sys/types.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "util.h"
#include "podmeta.h"

/*
 * The annotations (podmeta(8) "EGRESS POLICY"):
 *	egress.connectd.io/allow	entries, separated by commas or white
 *					space: NAME, *.SUFFIX, ADDRESS[/LEN] or
 *					*, each with :PORT or :* or nothing
 *	egress.connectd.io/mode		enforce, report or off
 * A pod's own value wins over its namespace's, key by key.  A value
 * that does not parse is not used at all (the namespace's is, for a
 * pod), and the reason is logged once per change.
 */

enum entry_kind {
	PE_ANY,			/* "*" */
	PE_NAME,		/* an exact name */
	PE_SUFFIX,		/* "*.suffix": names that end in ".suffix" */
	PE_NET			/* an address or CIDR: IP literals only */
};

struct policy_entry {
	enum entry_kind	 pe_kind;
	unsigned	 pe_port;	/* 0: any */
	unsigned	 pe_plen;	/* PE_NET: of 128 (v4 as ::ffff:0:0/96) */
	struct in6_addr	 pe_net;
	char		*pe_name;	/* PE_NAME, PE_SUFFIX (without "*."), lowercase */
	char		*pe_text;	/* as written: the answer's rule */
};

struct policy_list {
	struct policy_entry	*pl_e;
	size_t			 pl_n;
};

/* One namespace's defaults. */
struct nsent {
	struct hnode		 ns_hnode;
	char			*ns_name;
	struct policy_spec	 ns_spec;
	uint64_t		 ns_sig;
	unsigned int		 ns_gen;	/* last list that had it */
	TAILQ_ENTRY(nsent)	 ns_entry;	/* in nx_all */
};

struct ns_index {
	struct htab		 nx_table;
	TAILQ_HEAD(, nsent)	 nx_all;	/* the same, to walk */
	unsigned int		 nx_gen;
};

static const char *const policy_modes[] = {
	[POLICY_MODE_NONE] = NULL,
	[POLICY_MODE_ENFORCE] = "enforce",
	[POLICY_MODE_REPORT] = "report",
	[POLICY_MODE_OFF] = "off",
};

/* ------------------------------------------------------------ parsing */

static void
policy_entry_clear(struct policy_entry *e)
{
	free(e->pe_name);
	free(e->pe_text);
}

void
policy_list_free(struct policy_list *pl)
{
	size_t	 i;

	if (pl == NULL)
		return;
	for (i = 0; i < pl->pl_n; i++)
		policy_entry_clear(&pl->pl_e[i]);
	free(pl->pl_e);
	free(pl);
}

/*
 * A DNS name (RFC 1035 2.3.1, with "_" as service names use): labels
 * of 1-63 letters, digits, '-' and '_', not beginning or ending in '-';
 * at most POLICY_NAME_MAX in all.  Lowercased in place.
 */
static int
policy_name_ok(char *s)
{
	size_t	 n = strlen(s), lab = 0;
	char	*p;

	if (n == 0 || n > POLICY_NAME_MAX)
		return 0;
	for (p = s; *p != '\0'; p++) {
		*p = (char)tolower((unsigned char)*p);
		if (*p == '.') {
			if (lab == 0 || p[-1] == '-')
				return 0;
			lab = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return 0;
		if (lab == 0 && *p == '-')
			return 0;
		if (++lab > 63)
			return 0;
	}
	return lab > 0 && p[-1] != '-';
}

/* "443", "*" (0): 0 or -1. */
static int
policy_port_parse(const char *s, unsigned *port)
{
	unsigned long	 v;
	char		*end;

	if (strcmp(s, "*") == 0) {
		*port = 0;
		return 0;
	}
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
}

/* ADDRESS or ADDRESS/LEN into e; 0 or -1 with *why. */
static int
policy_net_parse(char *s, struct policy_entry *e, const char **why)
{
	unsigned long	 plen;
	char		*slash, *end;
	int		 af;

	if ((slash = strchr(s, '/')) != NULL)
		*slash = '\0';
	if (addr_key_parse(s, &e->pe_net, &af) == -1) {
		*why = "not an IP address";
		return -1;
	}
	e->pe_plen = 128;
	if (slash != NULL) {
		errno = 0;
		plen = strtoul(slash + 1, &end, 10);
		if (!isdigit((unsigned char)slash[1]) || errno != 0 ||
		    *end != '\0' || plen > (af == AF_INET ? 32UL : 128UL)) {
			*why = "bad prefix length";
			return -1;
		}
		e->pe_plen = (unsigned)plen + (af == AF_INET ? 96 : 0);
	}
	e->pe_kind = PE_NET;
	return 0;
}

/* One entry, tok (written on), into e. 0, or -1 with *why. */
static int
policy_entry_parse(char *tok, struct policy_entry *e, const char **why)
{
	char	*host = tok, *port = NULL, *c;
	struct in6_addr	 dummy;

	if (tok[0] == '[') {
		/* [IPv6] or [IPv6/LEN], then :PORT or nothing */
		if ((c = strchr(tok, ']')) == NULL) {
			*why = "no closing ']'";
			return -1;
		}
		*c++ = '\0';
		host = tok + 1;
		if (*c == ':')
			port = c + 1;
		else if (*c != '\0') {
			*why = "text after ']'";
			return -1;
		}
		if (policy_net_parse(host, e, why) == -1)
			return -1;
		if (strchr(host, ':') == NULL) {
			*why = "brackets around an IPv4 address";
			return -1;
		}
	} else {
		c = strrchr(tok, ':');
		if (c != NULL && strchr(tok, ':') == c) {
			/* one colon: HOST:PORT */
			*c = '\0';
			port = c + 1;
		}
		/* more than one: an IPv6 address without port */
		if (strcmp(host, "*") == 0)
			e->pe_kind = PE_ANY;
		else if (strchr(host, '/') != NULL || strchr(host, ':') != NULL ||
		    addr_key_parse(host, &dummy, NULL) == 0) {
			if (policy_net_parse(host, e, why) == -1)
				return -1;
		} else if (strncmp(host, "*.", 2) == 0) {
			if (!policy_name_ok(host + 2)) {
				*why = "not a host name after '*.'";
				return -1;
			}
			e->pe_kind = PE_SUFFIX;
			host += 2;
		} else {
			if (strlen(host) > 1 && host[strlen(host) - 1] == '.')
				host[strlen(host) - 1] = '\0';
			if (!policy_name_ok(host)) {
				*why = strchr(host, '*') != NULL ?
				    "'*' only as '*.' at the start" :
				    "not a host name";
				return -1;
			}
			e->pe_kind = PE_NAME;
		}
	}
	if (port != NULL && policy_port_parse(port, &e->pe_port) == -1) {
		*why = "not a port (1-65535 or *)";
		return -1;
	}
	if ((e->pe_kind == PE_NAME || e->pe_kind == PE_SUFFIX) &&
	    (e->pe_name = strdup(host)) == NULL) {
		*why = strerror(ENOMEM);
		return -1;
	}
	return 0;
}

int
policy_list_parse(const char *text, struct policy_list **out, char *err,
    size_t errlen)
{
	struct policy_list	*pl;
	struct policy_entry	*e;
	const char		*p = text, *why = NULL;
	char			 tok[POLICY_ENTRY_MAX + 1];
	size_t			 n, cap = 0;

	*out = NULL;
	if ((pl = calloc(1, sizeof(*pl))) == NULL)
		goto nomem;
	for (;;) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		for (n = 0; p[n] != '\0' && p[n] != ',' &&
		    !isspace((unsigned char)p[n]); n++)
			;
		if (pl->pl_n == POLICY_ENTRIES_MAX) {
			snprintf(err, errlen, "more than %d entries",
			    POLICY_ENTRIES_MAX);
			goto fail;
		}
		if (n > POLICY_ENTRY_MAX) {
			snprintf(err, errlen, "entry %zu: longer than %d "
			    "characters", pl->pl_n + 1, POLICY_ENTRY_MAX);
			goto fail;
		}
		if (pl->pl_n == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((e = reallocarray(pl->pl_e, cap,
			    sizeof(*e))) == NULL)
				goto nomem;
			pl->pl_e = e;
		}
		e = &pl->pl_e[pl->pl_n];
		memset(e, 0, sizeof(*e));
		memcpy(tok, p, n);
		tok[n] = '\0';
		if ((e->pe_text = strdup(tok)) == NULL)
			goto nomem;
		pl->pl_n++;
		if (policy_entry_parse(tok, e, &why) == -1) {
			/* what anyone wrote goes to stderr: printable only */
			for (n = 0; e->pe_text[n] != '\0'; n++)
				if ((unsigned char)e->pe_text[n] < 0x20 ||
				    (unsigned char)e->pe_text[n] >= 0x7f ||
				    e->pe_text[n] == '"' || e->pe_text[n] == '\\')
					e->pe_text[n] = '?';
			snprintf(err, errlen, "entry %zu \"%s\": %s", pl->pl_n,
			    e->pe_text, why);
			goto fail;
		}
		p += n;
	}
	*out = pl;
	return 0;
 nomem:
	snprintf(err, errlen, "%s", strerror(ENOMEM));
 fail:
	policy_list_free(pl);
	return -1;
}

enum policy_mode
policy_mode_parse(const char *s)
{
	size_t	 i;

	for (i = 1; i < nitems(policy_modes); i++)
		if (strcmp(s, policy_modes[i]) == 0)
			return (enum policy_mode)i;
	return POLICY_MODE_NONE;
}

void
policy_spec_clear(struct policy_spec *ps)
{
	policy_list_free(ps->ps_allow);
	free(ps->ps_error);
	memset(ps, 0, sizeof(*ps));
}

/* Append "KEY: MSG" to *errs, after "; " if it has one already. */
static void
policy_adderr(char **errs, const char *key, const char *msg)
{
	char	*s;

	if (asprintf(&s, "%s%s%s: %s", *errs != NULL ? *errs : "",
	    *errs != NULL ? "; " : "", key, msg) == -1)
		return;
	free(*errs);
	*errs = s;
}

uint64_t
policy_spec_read(json_t *meta, struct policy_spec *ps)
{
	json_t		*annots, *va, *vm;
	const char	*allow, *mode;
	char		 err[256];
	uint64_t	 sig = 0x9e3779b97f4a7c15ULL;

	memset(ps, 0, sizeof(*ps));
	annots = json_object_get(meta, "annotations");
	va = json_object_get(annots, POLICY_ANNOT_ALLOW);
	vm = json_object_get(annots, POLICY_ANNOT_MODE);
	if (va == NULL && vm == NULL)
		return 0;
	if (va != NULL) {
		allow = json_string_value(va);
		sig ^= allow != NULL ? hash_bytes(allow, strlen(allow)) : 1;
		if (allow == NULL)
			policy_adderr(&ps->ps_error, POLICY_ANNOT_ALLOW,
			    "not a string");
		else if (policy_list_parse(allow, &ps->ps_allow, err,
		    sizeof(err)) == -1)
			policy_adderr(&ps->ps_error, POLICY_ANNOT_ALLOW,
			    err);
		else
			ps->ps_has_allow = 1;
	}
	if (vm != NULL) {
		mode = json_string_value(vm);
		sig = sig * 31 + (mode != NULL ?
		    hash_bytes(mode, strlen(mode)) : 2);
		if (mode == NULL ||
		    (ps->ps_mode = policy_mode_parse(mode)) ==
		    POLICY_MODE_NONE) {
			snprintf(err, sizeof(err), "\"%.64s\" is not enforce, "
			    "report or off", mode != NULL ? mode :
			    "(not a string)");
			policy_adderr(&ps->ps_error, POLICY_ANNOT_MODE, err);
		}
	}
	return sig == 0 ? 1 : sig;
}

/* -------------------------------------------------------- namespaces */

static int
ns_match(const struct hnode *n, const void *key)
{
	const struct nsent *ne = (const struct nsent *)(const void *)n;

	return strcmp(ne->ns_name, key) == 0;
}

static struct nsent *
ns_find(const struct ns_index *nx, const char *name)
{
	return (struct nsent *)(void *)htab_find(&nx->nx_table,
	    hash_bytes(name, strlen(name)), ns_match, name);
}

static void
ns_free(struct nsent *ne)
{
	policy_spec_clear(&ne->ns_spec);
	free(ne->ns_name);
	free(ne);
}

struct ns_index *
ns_index_new(void)
{
	struct ns_index	*nx;

	if ((nx = calloc(1, sizeof(*nx))) == NULL)
		return NULL;
	TAILQ_INIT(&nx->nx_all);
	if (htab_init(&nx->nx_table, 64) == -1) {
		free(nx);
		return NULL;
	}
	return nx;
}

void
ns_index_free(struct ns_index *nx)
{
	struct hnode	*n;

	if (nx == NULL)
		return;
	while ((n = htab_pop(&nx->nx_table)) != NULL)
		ns_free((struct nsent *)(void *)n);
	htab_free(&nx->nx_table);
	free(nx);
}

int
ns_upsert(struct ns_index *nx, json_t *obj)
{
	struct nsent	*ne, *old;
	json_t		*meta = json_object_get(obj, "metadata");
	const char	*name = json_string_value(json_object_get(meta, "name"));
	uint64_t	 sig;

	if (name == NULL || *name == '\0')
		return -1;
	if ((ne = calloc(1, sizeof(*ne))) == NULL ||
	    (ne->ns_name = strdup(name)) == NULL) {
		free(ne);
		log_warnx("namespace %s: out of memory", name);
		return 0;
	}
	sig = policy_spec_read(meta, &ne->ns_spec);
	ne->ns_sig = sig;
	ne->ns_gen = nx->nx_gen;
	if ((old = ns_find(nx, name)) != NULL) {
		htab_remove(&nx->nx_table, &old->ns_hnode);
		TAILQ_REMOVE(&nx->nx_all, old, ns_entry);
		if (ne->ns_spec.ps_error != NULL && old->ns_sig != sig)
			log_warnx("namespace %s: %s; not used", name,
			    ne->ns_spec.ps_error);
		ns_free(old);
	} else if (ne->ns_spec.ps_error != NULL)
		log_warnx("namespace %s: %s; not used", name,
		    ne->ns_spec.ps_error);
	htab_insert(&nx->nx_table, &ne->ns_hnode, hash_bytes(name,
	    strlen(name)));
	TAILQ_INSERT_TAIL(&nx->nx_all, ne, ns_entry);
	return 0;
}

void
ns_delete(struct ns_index *nx, json_t *obj)
{
	json_t		*meta = json_object_get(obj, "metadata");
	const char	*name = json_string_value(json_object_get(meta, "name"));
	struct nsent	*ne;

	if (name != NULL && (ne = ns_find(nx, name)) != NULL) {
		htab_remove(&nx->nx_table, &ne->ns_hnode);
		TAILQ_REMOVE(&nx->nx_all, ne, ns_entry);
		ns_free(ne);
	}
}

void
ns_list_begin(struct ns_index *nx)
{
	nx->nx_gen++;
}

void
ns_list_end(struct ns_index *nx)
{
	struct nsent	*ne, *next;

	for (ne = TAILQ_FIRST(&nx->nx_all); ne != NULL; ne = next) {
		next = TAILQ_NEXT(ne, ns_entry);
		if (ne->ns_gen == nx->nx_gen)
			continue;
		htab_remove(&nx->nx_table, &ne->ns_hnode);
		TAILQ_REMOVE(&nx->nx_all, ne, ns_entry);
		ns_free(ne);
	}
}

size_t
ns_count(const struct ns_index *nx)
{
	return nx != NULL ? nx->nx_table.ht_count : 0;
}

/* ----------------------------------------------------------- matching */

static int
policy_net_match(const struct policy_entry *e, const struct in6_addr *a)
{
	unsigned	 bits = e->pe_plen, i;
	uint8_t		 mask;

	for (i = 0; bits >= 8; i++, bits -= 8)
		if (a->s6_addr[i] != e->pe_net.s6_addr[i])
			return 0;
	if (bits == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - bits));
	return (a->s6_addr[i] & mask) == (e->pe_net.s6_addr[i] & mask);
}

/*
 * The first entry of pl that lets host (lowercase, no trailing dot, no
 * brackets) at port through, or NULL.  isaddr: host is an IP literal,
 * parsed into a.
 */
static const struct policy_entry *
policy_match(const struct policy_list *pl, const char *host, int isaddr,
    const struct in6_addr *a, unsigned port)
{
	const struct policy_entry	*e;
	size_t				 i, hl = strlen(host), sl;

	for (i = 0; pl != NULL && i < pl->pl_n; i++) {
		e = &pl->pl_e[i];
		if (e->pe_port != 0 && e->pe_port != port)
			continue;
		switch (e->pe_kind) {
		case PE_ANY:
			return e;
		case PE_NAME:
			if (!isaddr && strcmp(host, e->pe_name) == 0)
				return e;
			break;
		case PE_SUFFIX:
			sl = strlen(e->pe_name);
			if (!isaddr && hl > sl + 1 && host[hl - sl - 1] == '.' &&
			    memcmp(host + hl - sl, e->pe_name, sl) == 0)
				return e;
			break;
		case PE_NET:
			if (isaddr && policy_net_match(e, a))
				return e;
			break;
		}
	}
	return NULL;
}

/* host as connectd or Squid sends %DST, normalized into buf. */
static void
policy_host_norm(const char *host, char *buf, size_t len, int *isaddr,
    struct in6_addr *a)
{
	size_t	 n;
	char	*p;

	if (host[0] == '[')
		host++;
	snprintf(buf, len, "%s", host);
	n = strlen(buf);
	if (n > 0 && buf[n - 1] == ']' && host != buf)
		buf[--n] = '\0';
	if (n > 1 && buf[n - 1] == '.')
		buf[--n] = '\0';
	for (p = buf; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	*isaddr = addr_key_parse(buf, a, NULL) == 0;
}

static const struct policy_entry *
policy_match_host(const struct policy_list *pl, const char *host,
    unsigned port)
{
	char		 buf[POLICY_NAME_MAX + 64];
	struct in6_addr	 a;
	int		 isaddr;

	policy_host_norm(host, buf, sizeof(buf), &isaddr, &a);
	return policy_match(pl, buf, isaddr, &a, port);
}

/* ------------------------------------------------------------ answers */

int
policy_decide(const struct ns_index *nx, const struct pod *p,
    const char *host, unsigned port, const char *sni, struct policy_result *r)
{
	const struct nsent		*ne = NULL;
	const struct policy_spec	*ps = p != NULL ? &p->p_policy : NULL;
	const struct policy_list	*list = NULL;
	const struct policy_entry	*e;
	enum policy_mode		 mode = POLICY_MODE_NONE;

	memset(r, 0, sizeof(*r));
	if (p == NULL || p->p_hostnet) {
		r->pr_mode = POLICY_MODE_OFF;
		r->pr_reason = p == NULL ? "no_pod" : "host_network";
		r->pr_allow = 1;
		return 0;
	}
	if (nx != NULL)
		ne = ns_find(nx, p->p_namespace);
	/* key by key: the pod's valid value, else the namespace's */
	if (ps->ps_has_allow) {
		list = ps->ps_allow;
		r->pr_from = "pod";
	} else if (ne != NULL && ne->ns_spec.ps_has_allow) {
		list = ne->ns_spec.ps_allow;
		r->pr_from = "namespace";
	}
	if (ps->ps_mode != POLICY_MODE_NONE)
		mode = ps->ps_mode;
	else if (ne != NULL && ne->ns_spec.ps_mode != POLICY_MODE_NONE)
		mode = ne->ns_spec.ps_mode;
	if (mode == POLICY_MODE_NONE)
		mode = r->pr_from != NULL ? POLICY_MODE_ENFORCE :
		    POLICY_MODE_OFF;
	r->pr_mode = mode;
	if (mode == POLICY_MODE_OFF) {
		r->pr_allow = 1;
		return 0;
	}
	/* a mode with no list anywhere: an empty list */
	if ((e = policy_match_host(list, host, port)) == NULL)
		r->pr_reason = "host_not_listed";
	else if (sni != NULL && *sni != '\0' && strcmp(sni, "-") != 0 &&
	    strcasecmp(sni, host) != 0 &&
	    policy_match_host(list, sni, port) == NULL)
		r->pr_reason = "sni_not_listed";
	else {
		r->pr_rule = e->pe_text;
		r->pr_allow = 1;
		return 0;
	}
	r->pr_allow = mode == POLICY_MODE_REPORT;
	return 0;
}

const char *
policy_mode_name(enum policy_mode m)
{
	return (size_t)m < nitems(policy_modes) ? policy_modes[m] : NULL;
}

char *
policy_result_json(const struct policy_result *r)
{
	json_t		*o;
	char		*s;
	const char	*verdict;

	/* a list said no: enforce denies, report only marks it */
	if (r->pr_allow && r->pr_reason != NULL &&
	    (strcmp(r->pr_reason, "host_not_listed") == 0 ||
	    strcmp(r->pr_reason, "sni_not_listed") == 0))
		verdict = "would_deny";
	else
		verdict = r->pr_allow ? "allow" : "deny";
	o = json_pack("{s:s?, s:s, s:s?, s:s?, s:s?}",
	    "mode", policy_mode_name(r->pr_mode),
	    "verdict", verdict,
	    "rule", r->pr_rule,
	    "from", r->pr_from,
	    "reason", r->pr_reason);
	if (o == NULL)
		return NULL;
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}
