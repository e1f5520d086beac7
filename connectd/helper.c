/* helper.c: external_acl_type: configuration, lookups for log lines and acls, the result cache */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectd.h"
#include "helper.h"

#define HELPER_KEY_MAX		(32 * 1024)
#define HELPER_BUCKETS_MIN	64

/* Squid's defaults (src/cf.data.pre, src/external_acl.cc) and ours */
#define HELPER_TTL		3600
#define HELPER_GRACE		1
#define HELPER_CACHE		262144
#define HELPER_CHILDREN_MAX	5
#define HELPER_CHILDREN_IDLE	1
#define HELPER_TIMEOUT		30.0
#define HELPER_LOG_WAIT		3.0

/* Lookups of one connection: one per type for the log line, plus acls. */
struct conn_helper {
	struct conn		*ch_conn;	/* NULL once the line is deferred */
	struct logrec		 ch_rec;	/* the deferred line */
	ev_timer		 ch_timer;
	ev_tstamp		 ch_deadline;	/* of the deferred line */
	int			 ch_ready;	/* on helper_ready */
	int			 ch_wake;	/* an acl answer arrived */
	TAILQ_ENTRY(conn_helper) ch_ready_entry;
	TAILQ_ENTRY(conn_helper) ch_defer_entry;
	TAILQ_HEAD(, helper_waiter) ch_acl;
	size_t			 ch_nlog;
	struct helper_waiter	 ch_log[];
};

static const struct {
	const char	*hf_code;
	enum helper_fmt	 hf_fmt;
} helper_fmts[] = {
	{ "%SRC",	HF_SRC },
	{ "%>a",	HF_SRC },
	{ "%SRCPORT",	HF_SRCPORT },
	{ "%>p",	HF_SRCPORT },
	{ "%DST",	HF_DST },
	{ "%>rd",	HF_DST },
	{ "%PORT",	HF_PORT },
	{ "%>rP",	HF_PORT },
	{ "%MYADDR",	HF_MYADDR },
	{ "%la",	HF_MYADDR },
	{ "%MYPORT",	HF_MYPORT },
	{ "%lp",	HF_MYPORT },
	{ "%METHOD",	HF_METHOD },
	{ "%rm",	HF_METHOD },
	{ "%URI",	HF_URI },
	{ "%ru",	HF_URI },
	{ "%ACL",	HF_ACL },
	{ "%DATA",	HF_DATA },
};

static TAILQ_HEAD(, helper_pool) helper_pools =
    TAILQ_HEAD_INITIALIZER(helper_pools);		/* running, in order */
static TAILQ_HEAD(, helper_pool) helper_retired =
    TAILQ_HEAD_INITIALIZER(helper_retired);
static TAILQ_HEAD(, conn_helper) helper_ready =
    TAILQ_HEAD_INITIALIZER(helper_ready);
static TAILQ_HEAD(, conn_helper) helper_deferred =
    TAILQ_HEAD_INITIALIZER(helper_deferred);
static size_t		 helper_ndeferred;
static char		 helper_key[HELPER_KEY_MAX];

static void	helper_ch_timer_cb(EV_P_ ev_timer *, int);

/* ---------------------------------------------------------- configuration */

static struct helper_def *
helper_def_find(const struct conf *cf, const char *name)
{
	struct helper_def	*hd;

	if (cf == NULL || cf->c_helpers == NULL)
		return NULL;
	TAILQ_FOREACH(hd, &cf->c_helpers->hc_defs, hd_entry)
		if (strcmp(hd->hd_name, name) == 0)
			return hd;
	return NULL;
}

int
helper_conf_exists(const struct conf *cf, const char *name)
{
	return helper_def_find(cf, name) != NULL;
}

static int
helper_conf_int(const char *opt, const char *v, long min, long max,
    int *out, char *err, size_t errlen)
{
	char	*end;
	long	 n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (*v == '\0' || *end != '\0' || errno != 0 || n < min || n > max) {
		snprintf(err, errlen, "%s: '%s' is not a number from %ld to "
		    "%ld", opt, v, min, max);
		return -1;
	}
	*out = (int)n;
	return 0;
}

static int
helper_conf_seconds(const char *opt, const char *v, double *out, char *err,
    size_t errlen)
{
	char	*end;
	double	 d;

	errno = 0;
	d = strtod(v, &end);
	if (*v == '\0' || *end != '\0' || errno != 0 || !(d >= 0.) ||
	    d > 86400. * 365) {
		snprintf(err, errlen, "%s: '%s' is not a number of seconds",
		    opt, v);
		return -1;
	}
	*out = d;
	return 0;
}

/* Options come before the FORMAT: key=value, or Squid's bare flags. */
static int
helper_conf_option(struct helper_def *hd, const char *arg, int *queue_set,
    int *nttl_set, char *err, size_t errlen)
{
	const char	*v;
	size_t		 klen;
	int		 n;

	if (strcmp(arg, "ipv4") == 0 || strcmp(arg, "ipv6") == 0)
		return 0;	/* obsolete in Squid, accepted there too */
	if ((v = strchr(arg, '=')) == NULL) {
		snprintf(err, errlen, "'%s': expected an option or a FORMAT "
		    "code (%%SRC ...) before the helper program", arg);
		return -1;
	}
	klen = (size_t)(v - arg);
	v++;
#define OPT(s)	(klen == sizeof(s) - 1 && strncmp(arg, s, klen) == 0)
	if (OPT("ttl")) {
		if (helper_conf_int("ttl", v, 0, INT_MAX, &n, err, errlen))
			return -1;
		hd->hd_ttl = n;
	} else if (OPT("negative_ttl")) {
		if (helper_conf_int("negative_ttl", v, 0, INT_MAX, &n, err,
		    errlen))
			return -1;
		hd->hd_negative_ttl = n;
		*nttl_set = 1;
	} else if (OPT("grace")) {
		if (helper_conf_int("grace", v, 0, 100, &hd->hd_grace, err,
		    errlen))
			return -1;
	} else if (OPT("cache")) {
		if (helper_conf_int("cache", v, 0, INT_MAX, &n, err, errlen))
			return -1;
		hd->hd_cache = (size_t)n;
	} else if (OPT("children-max") || OPT("children")) {
		if (helper_conf_int("children-max", v, 1, 1000,
		    &hd->hd_children_max, err, errlen))
			return -1;
	} else if (OPT("children-startup")) {
		if (helper_conf_int("children-startup", v, 0, 1000,
		    &hd->hd_children_startup, err, errlen))
			return -1;
	} else if (OPT("children-idle")) {
		if (helper_conf_int("children-idle", v, 0, 1000,
		    &hd->hd_children_idle, err, errlen))
			return -1;
	} else if (OPT("concurrency")) {
		if (helper_conf_int("concurrency", v, 0, HELPER_CONCURRENCY_MAX,
		    &hd->hd_concurrency, err, errlen))
			return -1;
	} else if (OPT("queue-size")) {
		if (helper_conf_int("queue-size", v, 0, 1000000,
		    &hd->hd_queue_size, err, errlen))
			return -1;
		*queue_set = 1;
	} else if (OPT("protocol")) {
		if (strcmp(v, "2.5") == 0)
			hd->hd_protocol25 = 1;
		else if (strcmp(v, "3.0") != 0) {
			snprintf(err, errlen, "protocol=%s: only 2.5 and 3.0 "
			    "exist", v);
			return -1;
		}
	} else if (OPT("timeout")) {
		if (helper_conf_seconds("timeout", v, &hd->hd_timeout, err,
		    errlen))
			return -1;
		if (hd->hd_timeout <= 0.) {
			snprintf(err, errlen, "timeout must be more than 0");
			return -1;
		}
	} else if (OPT("log-wait")) {
		if (helper_conf_seconds("log-wait", v, &hd->hd_log_wait, err,
		    errlen))
			return -1;
	} else {
		snprintf(err, errlen, "unknown option '%.*s'", (int)klen, arg);
		return -1;
	}
#undef OPT
	return 0;
}

int
helper_conf_directive(struct conf *cf, int argc, char **argv, char *err,
    size_t errlen)
{
	struct helper_def	*hd = NULL;
	size_t			 i, j, len, nargs;
	int			 a, queue_set = 0, nttl_set = 0;
	char			*p;

	if (argc < 4) {
		snprintf(err, errlen, "usage: external_acl_type name "
		    "[option=value ...] FORMAT ... /path/to/helper [args]");
		return -1;
	}
	if (helper_def_find(cf, argv[1]) != NULL) {
		snprintf(err, errlen, "external_acl_type %s is already "
		    "defined", argv[1]);
		return -1;
	}
	if (cf->c_helpers == NULL) {
		if ((cf->c_helpers = calloc(1, sizeof(*cf->c_helpers))) ==
		    NULL)
			goto oom;
		TAILQ_INIT(&cf->c_helpers->hc_defs);
	}
	if ((hd = calloc(1, sizeof(*hd))) == NULL)
		goto oom;
	hd->hd_ttl = HELPER_TTL;
	hd->hd_grace = HELPER_GRACE;
	hd->hd_cache = HELPER_CACHE;
	hd->hd_children_max = HELPER_CHILDREN_MAX;
	hd->hd_children_idle = HELPER_CHILDREN_IDLE;
	hd->hd_timeout = HELPER_TIMEOUT;
	hd->hd_log_wait = HELPER_LOG_WAIT;
	if ((hd->hd_name = strdup(argv[1])) == NULL)
		goto oom;

	for (a = 2; a < argc && argv[a][0] != '%'; a++)
		if (helper_conf_option(hd, argv[a], &queue_set, &nttl_set,
		    err, errlen) == -1)
			goto fail;
	if (a == argc) {
		snprintf(err, errlen, "no FORMAT (%%SRC ...) and no helper "
		    "program");
		goto fail;
	}
	for (; a < argc && argv[a][0] == '%'; a++) {
		for (j = 0; j < sizeof(helper_fmts) / sizeof(helper_fmts[0]);
		    j++)
			if (strcmp(argv[a], helper_fmts[j].hf_code) == 0)
				break;
		if (j == sizeof(helper_fmts) / sizeof(helper_fmts[0])) {
			snprintf(err, errlen, "unknown FORMAT code '%s'",
			    argv[a]);
			goto fail;
		}
		if (hd->hd_nfmt == HELPER_FORMATS_MAX) {
			snprintf(err, errlen, "more than %d FORMAT codes",
			    HELPER_FORMATS_MAX);
			goto fail;
		}
		if (helper_fmts[j].hf_fmt == HF_DATA)
			hd->hd_has_data = 1;
		hd->hd_fmt[hd->hd_nfmt++] = helper_fmts[j].hf_fmt;
	}
	if (a >= argc) {
		snprintf(err, errlen, "no helper program after the FORMAT");
		goto fail;
	}
	nargs = (size_t)(argc - a);
	if ((hd->hd_argv = calloc(nargs + 1, sizeof(char *))) == NULL)
		goto oom;
	for (i = 0; a + (int)i < argc; i++)
		if ((hd->hd_argv[i] = strdup(argv[a + i])) == NULL)
			goto oom;

	if (!nttl_set)
		hd->hd_negative_ttl = hd->hd_ttl;
	if (!queue_set)
		hd->hd_queue_size = 2 * hd->hd_children_max;
	if (hd->hd_children_startup > hd->hd_children_max)
		hd->hd_children_startup = hd->hd_children_max;
	if (hd->hd_children_idle > hd->hd_children_max)
		hd->hd_children_idle = hd->hd_children_max;

	/* the definition as written: a reload compares it */
	for (len = 0, a = 2; a < argc; a++)
		len += strlen(argv[a]) + 1;
	if ((hd->hd_text = malloc(len)) == NULL)
		goto oom;
	for (p = hd->hd_text, a = 2; a < argc; a++) {
		len = strlen(argv[a]);
		memcpy(p, argv[a], len);
		p += len;
		*p++ = a + 1 < argc ? ' ' : '\0';
	}
	TAILQ_INSERT_TAIL(&cf->c_helpers->hc_defs, hd, hd_entry);
	return 0;
 oom:
	snprintf(err, errlen, "out of memory");
 fail:
	helper_def_free(hd);
	return -1;
}

int
helper_conf_finish(struct conf *cf, char *err, size_t errlen)
{
	return 0;
}

static const char *
helper_fmt_name(enum helper_fmt f)
{
	size_t	i;

	for (i = 0; i < sizeof(helper_fmts) / sizeof(helper_fmts[0]); i++)
		if (helper_fmts[i].hf_fmt == f)
			return helper_fmts[i].hf_code;
	return "%DATA";
}

void
helper_conf_dump(const struct conf *cf, FILE *fp)
{
	struct helper_def	*hd;
	size_t			 i;

	if (cf->c_helpers == NULL)
		return;
	TAILQ_FOREACH(hd, &cf->c_helpers->hc_defs, hd_entry) {
		fprintf(fp, "external_acl_type %s ttl=%.0f negative_ttl=%.0f "
		    "grace=%d cache=%zu children-max=%d children-startup=%d "
		    "children-idle=%d concurrency=%d queue-size=%d%s "
		    "timeout=%g log-wait=%g", hd->hd_name, hd->hd_ttl,
		    hd->hd_negative_ttl, hd->hd_grace, hd->hd_cache,
		    hd->hd_children_max, hd->hd_children_startup,
		    hd->hd_children_idle, hd->hd_concurrency,
		    hd->hd_queue_size, hd->hd_protocol25 ? " protocol=2.5" : "",
		    hd->hd_timeout, hd->hd_log_wait);
		for (i = 0; i < hd->hd_nfmt; i++)
			fprintf(fp, " %s", helper_fmt_name(hd->hd_fmt[i]));
		for (i = 0; hd->hd_argv[i] != NULL; i++)
			fprintf(fp, " %s", hd->hd_argv[i]);
		fputc('\n', fp);
	}
}

void
helper_conf_free(struct conf *cf)
{
	struct helper_def	*hd;

	if (cf->c_helpers == NULL)
		return;
	while ((hd = TAILQ_FIRST(&cf->c_helpers->hc_defs)) != NULL) {
		TAILQ_REMOVE(&cf->c_helpers->hc_defs, hd, hd_entry);
		helper_def_free(hd);
	}
	free(cf->c_helpers);
	cf->c_helpers = NULL;
}

/* ------------------------------------------------------------------ cache */

static uint32_t
helper_hash(const char *s, size_t len)
{
	uint32_t	h = 2166136261u;
	size_t		i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static void
helper_answer_unref(struct helper_answer *ha)
{
	if (ha != NULL && --ha->ha_refs == 0)
		free(ha);
}

static struct helper_answer *
helper_answer_ref(struct helper_answer *ha)
{
	ha->ha_refs++;
	return ha;
}

static struct helper_entry *
helper_cache_find(struct helper_pool *hp, const char *key, size_t len,
    uint32_t hash)
{
	struct helper_entry	*he;

	if (hp->hp_nbuckets == 0)
		return NULL;
	for (he = hp->hp_buckets[hash & (hp->hp_nbuckets - 1)]; he != NULL;
	    he = he->he_next)
		if (he->he_hash == hash && he->he_keylen == len &&
		    memcmp(he->he_key, key, len) == 0)
			return he;
	return NULL;
}

static void
helper_cache_unlink(struct helper_pool *hp, struct helper_entry *he)
{
	struct helper_entry	**pp;

	for (pp = &hp->hp_buckets[he->he_hash & (hp->hp_nbuckets - 1)];
	    *pp != NULL; pp = &(*pp)->he_next)
		if (*pp == he) {
			*pp = he->he_next;
			break;
		}
	TAILQ_REMOVE(&hp->hp_lru, he, he_lru);
	hp->hp_nentries--;
	helper_answer_unref(he->he_answer);
	free(he->he_key);
	free(he);
}

static int
helper_cache_grow(struct helper_pool *hp)
{
	struct helper_entry	**nb, *he, *next;
	size_t			 n, i, slot;

	n = hp->hp_nbuckets == 0 ? HELPER_BUCKETS_MIN : hp->hp_nbuckets * 2;
	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return -1;
	for (i = 0; i < hp->hp_nbuckets; i++)
		for (he = hp->hp_buckets[i]; he != NULL; he = next) {
			next = he->he_next;
			slot = he->he_hash & (n - 1);
			he->he_next = nb[slot];
			nb[slot] = he;
		}
	free(hp->hp_buckets);
	hp->hp_buckets = nb;
	hp->hp_nbuckets = n;
	return 0;
}

/* The oldest entries go first; those with a request on its way stay. */
static struct helper_entry *
helper_cache_add(struct helper_pool *hp, const char *key, size_t len,
    uint32_t hash)
{
	struct helper_entry	*he, *next;
	size_t			 slot;

	for (he = TAILQ_FIRST(&hp->hp_lru); he != NULL &&
	    hp->hp_def->hd_cache > 0 && hp->hp_nentries >= hp->hp_def->hd_cache;
	    he = next) {
		next = TAILQ_NEXT(he, he_lru);
		if (he->he_lookup == NULL)
			helper_cache_unlink(hp, he);
	}
	if (hp->hp_nentries >= hp->hp_nbuckets && helper_cache_grow(hp) == -1)
		return NULL;
	if ((he = calloc(1, sizeof(*he))) == NULL)
		return NULL;
	if ((he->he_key = malloc(len + 1)) == NULL) {
		free(he);
		return NULL;
	}
	memcpy(he->he_key, key, len);
	he->he_key[len] = '\0';
	he->he_keylen = len;
	he->he_hash = hash;
	slot = hash & (hp->hp_nbuckets - 1);
	he->he_next = hp->hp_buckets[slot];
	hp->hp_buckets[slot] = he;
	TAILQ_INSERT_TAIL(&hp->hp_lru, he, he_lru);
	hp->hp_nentries++;
	return he;
}

static double
helper_entry_ttl(const struct helper_pool *hp, const struct helper_entry *he)
{
	return he->he_answer->ha_result == HELPER_OK ? hp->hp_def->hd_ttl :
	    hp->hp_def->hd_negative_ttl;
}

static int
helper_entry_expired(const struct helper_pool *hp,
    const struct helper_entry *he, ev_tstamp now)
{
	return he->he_date + helper_entry_ttl(hp, he) <= now;
}

static int
helper_entry_stale(const struct helper_pool *hp,
    const struct helper_entry *he, ev_tstamp now)
{
	return he->he_date + helper_entry_ttl(hp, he) *
	    (100 - hp->hp_def->hd_grace) / 100. <= now;
}

void
helper_pool_free(struct helper_pool *hp)
{
	struct helper_entry	*he;

	ev_timer_stop(worker_main->w_loop, &hp->hp_timer);
	if (hp->hp_active)
		TAILQ_REMOVE(&helper_pools, hp, hp_entry);
	else
		TAILQ_REMOVE(&helper_retired, hp, hp_entry);
	while ((he = TAILQ_FIRST(&hp->hp_lru)) != NULL)
		helper_cache_unlink(hp, he);
	free(hp->hp_buckets);
	log_debug("helper %s: pool freed", hp->hp_def->hd_name);
	helper_def_free(hp->hp_def);
	free(hp);
}

/* ---------------------------------------------------------------- lookups */

static size_t
helper_addr(const struct sockaddr_storage *ss, char *buf, size_t len,
    int *port)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6	*sin6 = (const struct sockaddr_in6 *)ss;
	struct in_addr			 a4;

	*port = -1;
	if (ss->ss_family == AF_INET) {
		*port = ntohs(sin->sin_port);
		if (inet_ntop(AF_INET, &sin->sin_addr, buf, len) != NULL)
			return strlen(buf);
	} else if (ss->ss_family == AF_INET6) {
		*port = ntohs(sin6->sin6_port);
		/* a v4 client on a v6 socket: Squid shows the v4 address */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			memcpy(&a4, &sin6->sin6_addr.s6_addr[12], sizeof(a4));
			if (inet_ntop(AF_INET, &a4, buf, len) != NULL)
				return strlen(buf);
		} else if (inet_ntop(AF_INET6, &sin6->sin6_addr, buf, len) !=
		    NULL)
			return strlen(buf);
	}
	snprintf(buf, len, "-");
	return 1;
}

static int
helper_key_add(const struct helper_def *hd, size_t *off, const char *v,
    size_t len, int escape)
{
	size_t	n;

	if (*off > 0) {
		if (*off + 1 >= sizeof(helper_key))
			return -1;
		helper_key[(*off)++] = ' ';
	}
	if (v == NULL || len == 0) {
		v = "-";
		len = 1;
	}
	if (escape && !hd->hd_protocol25)
		n = helper_escape(helper_key + *off, sizeof(helper_key) - *off,
		    v, len);
	else {
		n = len;
		if (*off + n < sizeof(helper_key))
			memcpy(helper_key + *off, v, n);
	}
	if (*off + n >= sizeof(helper_key))
		return -1;
	*off += n;
	return 0;
}

/* %DATA: the acl's arguments, each escaped, or "-". */
static int
helper_key_data(const struct helper_def *hd, size_t *off, const char *data)
{
	const char	*p, *e;
	int		 any = 0;

	for (p = data; p != NULL && *p != '\0'; p = e) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		for (e = p; *e != '\0' && *e != ' ' && *e != '\t'; e++)
			;
		if (helper_key_add(hd, off, p, (size_t)(e - p), 1) == -1)
			return -1;
		any = 1;
	}
	if (!any)
		return helper_key_add(hd, off, "-", 1, 0);
	return 0;
}

/* The request line for this connection, without channel ID or newline. */
static int
helper_expand(const struct helper_def *hd, const struct conn *c,
    const char *data, size_t *lenp)
{
	const struct logrec	*r = &c->c_rec;
	char			 buf[INET6_ADDRSTRLEN + 8];
	size_t			 i, off = 0, n;
	int			 port, rv = 0;
	const char		*s;

	for (i = 0; i < hd->hd_nfmt && rv == 0; i++) {
		switch (hd->hd_fmt[i]) {
		case HF_SRC:
		case HF_MYADDR:
			n = helper_addr(hd->hd_fmt[i] == HF_SRC ?
			    &r->lr_client : &r->lr_local, buf, sizeof(buf),
			    &port);
			rv = helper_key_add(hd, &off, buf, n, 1);
			break;
		case HF_SRCPORT:
		case HF_MYPORT:
			(void)helper_addr(hd->hd_fmt[i] == HF_SRCPORT ?
			    &r->lr_client : &r->lr_local, buf, sizeof(buf),
			    &port);
			n = port < 0 ? 0 :
			    (size_t)snprintf(buf, sizeof(buf), "%d", port);
			rv = helper_key_add(hd, &off, buf, n, 1);
			break;
		case HF_PORT:
			n = r->lr_port <= 0 ? 0 :
			    (size_t)snprintf(buf, sizeof(buf), "%d", r->lr_port);
			rv = helper_key_add(hd, &off, buf, n, 1);
			break;
		case HF_DST:
		case HF_METHOD:
		case HF_URI:
			s = hd->hd_fmt[i] == HF_DST ? r->lr_host :
			    hd->hd_fmt[i] == HF_METHOD ? r->lr_method :
			    r->lr_authority;
			rv = helper_key_add(hd, &off, s, s ? strlen(s) : 0, 1);
			break;
		case HF_ACL:
			rv = helper_key_add(hd, &off, hd->hd_name,
			    strlen(hd->hd_name), 1);
			break;
		case HF_DATA:
			rv = helper_key_data(hd, &off, data);
			break;
		}
	}
	if (rv == 0 && !hd->hd_has_data)
		rv = helper_key_data(hd, &off, data);
	if (rv == -1)
		return -1;
	*lenp = off;
	return 0;
}

static void
helper_ch_ready(struct conn_helper *ch)
{
	if (ch->ch_ready)
		return;
	ch->ch_ready = 1;
	TAILQ_INSERT_TAIL(&helper_ready, ch, ch_ready_entry);
}

static void
helper_waiter_resolve(struct helper_waiter *hw, struct helper_answer *ha,
    const char *error)
{
	hw->hw_lookup = NULL;
	hw->hw_done = 1;
	if (ha != NULL)
		hw->hw_answer = helper_answer_ref(ha);
	else
		hw->hw_error = error;
	if (hw->hw_acl && hw->hw_ch->ch_conn != NULL) {
		hw->hw_ch->ch_wake = 1;
		helper_ch_ready(hw->hw_ch);
	} else if (!hw->hw_acl && hw->hw_ch->ch_conn == NULL)
		helper_ch_ready(hw->hw_ch);
}

/*
 * An answer (error NULL) or a failure for one request: the cache learns
 * OK and ERR; everyone waiting gets it.  Nothing here calls back into a
 * connection: helper_ready_run() does that once the caller is done.
 */
void
helper_lookup_done(struct helper_lookup *hl, enum helper_result result,
    const char *log, size_t loglen, const char *error)
{
	struct helper_pool	*hp = hl->hl_pool;
	struct helper_entry	*he = hl->hl_he;
	struct helper_answer	*ha = NULL;
	struct helper_waiter	*hw;

	if (error == NULL) {
		if ((ha = malloc(sizeof(*ha) + loglen + 1)) == NULL)
			error = "helper_down";
		else {
			ha->ha_refs = 1;
			ha->ha_result = result;
			ha->ha_has_log = log != NULL;
			if (log != NULL)
				memcpy(ha->ha_log, log, loglen);
			ha->ha_log[loglen] = '\0';
		}
	}
	he->he_lookup = NULL;
	if (ha != NULL) {
		helper_answer_unref(he->he_answer);
		he->he_answer = helper_answer_ref(ha);
		he->he_date = ev_now(worker_main->w_loop);
	} else if (he->he_answer == NULL)
		helper_cache_unlink(hp, he);
	while ((hw = TAILQ_FIRST(&hl->hl_waiters)) != NULL) {
		TAILQ_REMOVE(&hl->hl_waiters, hw, hw_entry);
		helper_waiter_resolve(hw, ha, error);
	}
	helper_answer_unref(ha);
	hp->hp_nlookups--;
	free(hl);
}

static struct helper_lookup *
helper_lookup_new(struct helper_pool *hp, struct helper_entry *he)
{
	struct helper_lookup	*hl;

	if ((hl = calloc(1, sizeof(*hl))) == NULL)
		return NULL;
	hl->hl_pool = hp;
	hl->hl_he = he;
	TAILQ_INIT(&hl->hl_waiters);
	he->he_lookup = hl;
	hp->hp_nlookups++;
	return hl;
}

static void
helper_lookup_abort(struct helper_lookup *hl)
{
	struct helper_pool	*hp = hl->hl_pool;
	struct helper_entry	*he = hl->hl_he;

	he->he_lookup = NULL;
	if (he->he_answer == NULL)
		helper_cache_unlink(hp, he);
	hp->hp_nlookups--;
	free(hl);
}

/*
 * Start one waiter: a fresh cache entry answers at once; otherwise it
 * joins the request on its way for the same line, or starts one.
 */
static void
helper_waiter_start(struct helper_waiter *hw, struct helper_pool *hp,
    const struct conn *c, const char *data)
{
	struct helper_entry	*he;
	struct helper_lookup	*hl;
	ev_tstamp		 now = ev_now(worker_main->w_loop);
	const char		*err;
	uint32_t		 hash;
	size_t			 len;

	hw->hw_pool = hp;
	hp->hp_refs++;
	hp->hp_st.hs_lookups++;
	if (helper_expand(hp->hp_def, c, data, &len) == -1) {
		hw->hw_done = 1;
		hw->hw_error = "helper_down";
		return;
	}
	hash = helper_hash(helper_key, len);
	he = helper_cache_find(hp, helper_key, len, hash);
	if (he != NULL && he->he_answer != NULL &&
	    !helper_entry_expired(hp, he, now)) {
		hp->hp_st.hs_hits++;
		hw->hw_done = 1;
		hw->hw_answer = helper_answer_ref(he->he_answer);
		TAILQ_REMOVE(&hp->hp_lru, he, he_lru);
		TAILQ_INSERT_TAIL(&hp->hp_lru, he, he_lru);
		/* grace: refresh in the background, nobody waits for it */
		if (he->he_lookup == NULL && helper_entry_stale(hp, he, now) &&
		    (hl = helper_lookup_new(hp, he)) != NULL &&
		    helper_pool_submit(hp, hl) != NULL)
			helper_lookup_abort(hl);
		return;
	}
	if (he != NULL && he->he_lookup != NULL) {
		hp->hp_st.hs_shared++;
		hw->hw_lookup = he->he_lookup;
		TAILQ_INSERT_TAIL(&he->he_lookup->hl_waiters, hw, hw_entry);
		return;
	}
	if ((he == NULL && (he = helper_cache_add(hp, helper_key, len,
	    hash)) == NULL) || (hl = helper_lookup_new(hp, he)) == NULL) {
		if (he != NULL && he->he_answer == NULL)
			helper_cache_unlink(hp, he);
		hw->hw_done = 1;
		hw->hw_error = "helper_down";
		return;
	}
	hw->hw_lookup = hl;
	TAILQ_INSERT_TAIL(&hl->hl_waiters, hw, hw_entry);
	if ((err = helper_pool_submit(hp, hl)) != NULL) {
		TAILQ_REMOVE(&hl->hl_waiters, hw, hw_entry);
		hw->hw_lookup = NULL;
		helper_lookup_abort(hl);
		hw->hw_done = 1;
		hw->hw_error = err;
	}
}

/* Leave a lookup (it goes on for the cache) and drop every reference. */
static void
helper_waiter_clear(struct helper_waiter *hw)
{
	if (hw->hw_lookup != NULL) {
		TAILQ_REMOVE(&hw->hw_lookup->hl_waiters, hw, hw_entry);
		hw->hw_lookup = NULL;
	}
	helper_answer_unref(hw->hw_answer);
	hw->hw_answer = NULL;
	if (hw->hw_pool != NULL)
		helper_pool_unref(hw->hw_pool);
	hw->hw_pool = NULL;
	free(hw->hw_data);
	hw->hw_data = NULL;
}

static void
helper_waiter_timeout(struct helper_waiter *hw)
{
	if (hw->hw_done)
		return;
	if (hw->hw_lookup != NULL) {
		TAILQ_REMOVE(&hw->hw_lookup->hl_waiters, hw, hw_entry);
		hw->hw_lookup = NULL;
	}
	hw->hw_done = 1;
	hw->hw_error = "timeout";
	hw->hw_pool->hp_st.hs_timeouts++;
}

/* ----------------------------------------------------- connections, lines */

static struct conn_helper *
helper_ch_new(struct conn *c, size_t nlog)
{
	struct conn_helper	*ch;

	if ((ch = calloc(1, sizeof(*ch) + nlog * sizeof(ch->ch_log[0]))) ==
	    NULL) {
		log_warn("helper: calloc");
		return NULL;
	}
	ch->ch_conn = c;
	ch->ch_nlog = nlog;
	TAILQ_INIT(&ch->ch_acl);
	ev_init(&ch->ch_timer, helper_ch_timer_cb);
	ch->ch_timer.data = ch;
	return ch;
}

static void
helper_ch_free(struct conn_helper *ch)
{
	struct helper_waiter	*hw;
	size_t			 i;

	ev_timer_stop(worker_main->w_loop, &ch->ch_timer);
	if (ch->ch_ready)
		TAILQ_REMOVE(&helper_ready, ch, ch_ready_entry);
	if (ch->ch_conn == NULL) {
		TAILQ_REMOVE(&helper_deferred, ch, ch_defer_entry);
		helper_ndeferred--;
		logrec_clear(&ch->ch_rec);
	}
	while ((hw = TAILQ_FIRST(&ch->ch_acl)) != NULL) {
		TAILQ_REMOVE(&ch->ch_acl, hw, hw_centry);
		helper_waiter_clear(hw);
		free(hw);
	}
	for (i = 0; i < ch->ch_nlog; i++)
		helper_waiter_clear(&ch->ch_log[i]);
	free(ch);
}

/* The line can be written: the first type with a log= value has answered. */
static int
helper_ch_settled(const struct conn_helper *ch)
{
	const struct helper_waiter	*hw;
	size_t				 i;

	for (i = 0; i < ch->ch_nlog; i++) {
		hw = &ch->ch_log[i];
		if (!hw->hw_done)
			return 0;
		if (hw->hw_answer != NULL && hw->hw_answer->ha_has_log)
			return 1;
	}
	return 1;
}

/* lr_pod from the first type that answered with log=, else lr_pod_error. */
static void
helper_ch_fill(const struct conn_helper *ch, struct logrec *r)
{
	const struct helper_waiter	*hw;
	const char			*error = NULL;
	size_t				 i;

	if (ch->ch_nlog == 0 || r->lr_pod != NULL)
		return;
	for (i = 0; i < ch->ch_nlog; i++) {
		hw = &ch->ch_log[i];
		if (hw->hw_answer != NULL && hw->hw_answer->ha_has_log) {
			if ((r->lr_pod = strdup(hw->hw_answer->ha_log)) ==
			    NULL)
				break;
			r->lr_pod_error = NULL;
			return;
		}
		if (error == NULL)
			error = !hw->hw_done ? "timeout" : hw->hw_error;
	}
	r->lr_pod_error = error;
}

static void
helper_ch_arm(struct conn_helper *ch)
{
	struct helper_waiter	*hw;
	ev_tstamp		 when = 0., now = ev_now(worker_main->w_loop);

	ev_timer_stop(worker_main->w_loop, &ch->ch_timer);
	if (ch->ch_conn == NULL)
		when = ch->ch_deadline;
	else
		TAILQ_FOREACH(hw, &ch->ch_acl, hw_centry)
			if (!hw->hw_done && (when == 0. ||
			    hw->hw_deadline < when))
				when = hw->hw_deadline;
	if (when == 0.)
		return;
	ev_timer_set(&ch->ch_timer, when > now ? when - now : 0.001, 0.);
	ev_timer_start(worker_main->w_loop, &ch->ch_timer);
}

static void
helper_ch_write(struct conn_helper *ch)
{
	struct conf	*cf = worker_main->w_conf;

	helper_ch_fill(ch, &ch->ch_rec);
	accesslog_write(cf, &ch->ch_rec);
	helper_ch_free(ch);
}

static void
helper_ch_timer_cb(EV_P_ ev_timer *t, int revents)
{
	struct conn_helper	*ch = t->data;
	struct helper_waiter	*hw;
	size_t			 i;

	if (ch->ch_conn == NULL) {
		for (i = 0; i < ch->ch_nlog; i++)
			helper_waiter_timeout(&ch->ch_log[i]);
		helper_ch_write(ch);
		return;
	}
	TAILQ_FOREACH(hw, &ch->ch_acl, hw_centry)
		if (!hw->hw_done && hw->hw_deadline <= ev_now(EV_A) + 0.0005) {
			helper_waiter_timeout(hw);
			ch->ch_wake = 1;
		}
	helper_ch_arm(ch);
	if (ch->ch_wake)
		helper_ch_ready(ch);
	helper_ready_run();
}

/*
 * Act on answers once the code that delivered them is out of the way:
 * wake connections whose acl waited, write deferred lines now complete.
 */
void
helper_ready_run(void)
{
	static int		 running;
	struct conn_helper	*ch;

	if (running)
		return;
	running = 1;
	while ((ch = TAILQ_FIRST(&helper_ready)) != NULL) {
		TAILQ_REMOVE(&helper_ready, ch, ch_ready_entry);
		ch->ch_ready = 0;
		if (ch->ch_conn == NULL) {
			if (helper_ch_settled(ch))
				helper_ch_write(ch);
			continue;
		}
		if (ch->ch_wake) {
			ch->ch_wake = 0;
			helper_ch_arm(ch);
			conn_policy_wakeup(ch->ch_conn);	/* ch may be gone */
		}
	}
	running = 0;
}

void
helper_conn_start(struct conn *c)
{
	struct conn_helper	*ch;
	struct helper_pool	*hp;
	size_t			 n = 0;

	TAILQ_FOREACH(hp, &helper_pools, hp_entry)
		n++;
	if (n == 0 || c->c_helper != NULL)
		return;
	if ((ch = helper_ch_new(c, n)) == NULL)
		return;
	n = 0;
	TAILQ_FOREACH(hp, &helper_pools, hp_entry) {
		ch->ch_log[n].hw_ch = ch;
		helper_waiter_start(&ch->ch_log[n++], hp, c, NULL);
	}
	/* answered from the cache: nothing to keep for the life of the tunnel */
	if (helper_ch_settled(ch)) {
		helper_ch_fill(ch, &c->c_rec);
		helper_ch_free(ch);
		return;
	}
	c->c_helper = ch;
}

int
helper_conn_finish(struct conn *c)
{
	struct conn_helper	*ch = c->c_helper;
	struct helper_waiter	*hw;
	ev_tstamp		 wait = 0.;
	size_t			 i;

	if (ch == NULL)
		return 0;
	c->c_helper = NULL;
	while ((hw = TAILQ_FIRST(&ch->ch_acl)) != NULL) {
		TAILQ_REMOVE(&ch->ch_acl, hw, hw_centry);
		helper_waiter_clear(hw);
		free(hw);
	}
	if (ch->ch_ready) {
		TAILQ_REMOVE(&helper_ready, ch, ch_ready_entry);
		ch->ch_ready = 0;
	}
	ch->ch_wake = 0;
	for (i = 0; i < ch->ch_nlog; i++)
		if (!ch->ch_log[i].hw_done &&
		    ch->ch_log[i].hw_pool->hp_def->hd_log_wait > wait)
			wait = ch->ch_log[i].hw_pool->hp_def->hd_log_wait;
	if (helper_ch_settled(ch) || wait <= 0. ||
	    helper_ndeferred >= HELPER_DEFER_MAX ||
	    c->c_worker->w_stopping) {
		helper_ch_fill(ch, &c->c_rec);
		helper_ch_free(ch);
		return 0;
	}
	/* the line waits for the answer; conn.c must not write or free it */
	ch->ch_rec = c->c_rec;
	memset(&c->c_rec, 0, sizeof(c->c_rec));
	ch->ch_conn = NULL;
	ch->ch_deadline = ev_now(c->c_worker->w_loop) + wait;
	TAILQ_INSERT_TAIL(&helper_deferred, ch, ch_defer_entry);
	helper_ndeferred++;
	for (i = 0; i < ch->ch_nlog; i++)
		if (!ch->ch_log[i].hw_done) {
			ch->ch_log[i].hw_pool->hp_st.hs_deferred++;
			break;
		}
	helper_ch_arm(ch);
	return 1;
}

int
helper_conn_answer(struct conn *c, const char *name, const char *data)
{
	struct conn_helper	*ch = c->c_helper;
	struct helper_waiter	*hw;
	struct helper_pool	*hp;

	TAILQ_FOREACH(hp, &helper_pools, hp_entry)
		if (strcmp(hp->hp_def->hd_name, name) == 0)
			break;
	if (hp == NULL)
		return 0;
	if (data != NULL && (data[0] == '\0' || strcmp(data, "-") == 0))
		data = NULL;
	if (ch == NULL) {
		if ((ch = helper_ch_new(c, 0)) == NULL)
			return 0;
		c->c_helper = ch;
	}
	TAILQ_FOREACH(hw, &ch->ch_acl, hw_centry) {
		if (hw->hw_pool != hp || (hw->hw_data == NULL) != (data == NULL) ||
		    (data != NULL && strcmp(hw->hw_data, data) != 0))
			continue;
		if (!hw->hw_done)
			return -1;
		return hw->hw_answer != NULL &&
		    hw->hw_answer->ha_result == HELPER_OK ? 1 : 0;
	}
	if ((hw = calloc(1, sizeof(*hw))) == NULL)
		return 0;
	if (data != NULL && (hw->hw_data = strdup(data)) == NULL) {
		free(hw);
		return 0;
	}
	hw->hw_ch = ch;
	hw->hw_acl = 1;
	TAILQ_INSERT_TAIL(&ch->ch_acl, hw, hw_centry);
	helper_waiter_start(hw, hp, c, data);
	if (hw->hw_done)
		return hw->hw_answer != NULL &&
		    hw->hw_answer->ha_result == HELPER_OK ? 1 : 0;
	hw->hw_deadline = ev_now(c->c_worker->w_loop) + hp->hp_def->hd_timeout;
	helper_ch_arm(ch);
	return -1;
}

/* ------------------------------------------------- configuration changes */

/*
 * Make the pools match a configuration that is now in force.  A
 * definition written exactly as before keeps its children and cache;
 * any other is started fresh, and the pools no longer named finish
 * what they have and close.
 */
void
helper_sync(struct worker *w, struct conf *cf)
{
	TAILQ_HEAD(, helper_pool)	 keep = TAILQ_HEAD_INITIALIZER(keep);
	struct helper_def		*hd;
	struct helper_pool		*hp;

	if (cf->c_helpers != NULL)
		TAILQ_FOREACH(hd, &cf->c_helpers->hc_defs, hd_entry) {
			TAILQ_FOREACH(hp, &helper_pools, hp_entry)
				if (strcmp(hp->hp_def->hd_name,
				    hd->hd_name) == 0 &&
				    strcmp(hp->hp_def->hd_text,
				    hd->hd_text) == 0)
					break;
			if (hp != NULL) {
				TAILQ_REMOVE(&helper_pools, hp, hp_entry);
				TAILQ_INSERT_TAIL(&keep, hp, hp_entry);
				log_debug("helper %s: unchanged", hd->hd_name);
				continue;
			}
			if ((hp = helper_pool_new(hd)) == NULL) {
				log_warnx("helper %s: out of memory",
				    hd->hd_name);
				continue;
			}
			TAILQ_INSERT_TAIL(&keep, hp, hp_entry);
		}
	while ((hp = TAILQ_FIRST(&helper_pools)) != NULL) {
		TAILQ_REMOVE(&helper_pools, hp, hp_entry);
		TAILQ_INSERT_TAIL(&helper_retired, hp, hp_entry);
		log_info("helper %s: definition changed or removed; its "
		    "children finish their work and close",
		    hp->hp_def->hd_name);
		helper_pool_retire(hp);
	}
	while ((hp = TAILQ_FIRST(&keep)) != NULL) {
		TAILQ_REMOVE(&keep, hp, hp_entry);
		TAILQ_INSERT_TAIL(&helper_pools, hp, hp_entry);
	}
	helper_ready_run();
}

/* At exit: waiting lines are written as they are, children stopped. */
void
helper_shutdown(struct worker *w)
{
	struct conn_helper	*ch;
	struct helper_pool	*hp;
	size_t			 i;

	while ((ch = TAILQ_FIRST(&helper_deferred)) != NULL) {
		for (i = 0; i < ch->ch_nlog; i++)
			helper_waiter_timeout(&ch->ch_log[i]);
		helper_ch_write(ch);
	}
	helper_stats_log();
	TAILQ_FOREACH(hp, &helper_pools, hp_entry)
		helper_pool_kill_all(hp);
	TAILQ_FOREACH(hp, &helper_retired, hp_entry)
		helper_pool_kill_all(hp);
	helper_ready_run();
	while ((hp = TAILQ_FIRST(&helper_pools)) != NULL)
		helper_pool_free(hp);
	while ((hp = TAILQ_FIRST(&helper_retired)) != NULL)
		helper_pool_free(hp);
}

static void
helper_stats_pool(const struct helper_pool *hp, const char *state)
{
	const struct helper_pool_stats	*st = &hp->hp_st;

	log_info("stats: helper %s%s: lookups %llu, cache hits %llu, "
	    "shared %llu, requests %llu, ok %llu, err %llu, bh %llu, "
	    "queue full %llu, helper down %llu, timeouts %llu, "
	    "deferred lines %llu, started %llu, restarts %llu, "
	    "malformed %llu, children %d, queued %zu, cached %zu, "
	    "answer wait avg %.3f ms max %.3f ms",
	    hp->hp_def->hd_name, state,
	    (unsigned long long)st->hs_lookups,
	    (unsigned long long)st->hs_hits,
	    (unsigned long long)st->hs_shared,
	    (unsigned long long)st->hs_requests,
	    (unsigned long long)st->hs_ok,
	    (unsigned long long)st->hs_err,
	    (unsigned long long)st->hs_bh,
	    (unsigned long long)st->hs_queue_full,
	    (unsigned long long)st->hs_down,
	    (unsigned long long)st->hs_timeouts,
	    (unsigned long long)st->hs_deferred,
	    (unsigned long long)st->hs_spawned,
	    (unsigned long long)st->hs_restarts,
	    (unsigned long long)st->hs_malformed,
	    hp->hp_nrunning, hp->hp_nqueued, hp->hp_nentries,
	    st->hs_ok + st->hs_err + st->hs_bh > 0 ? 1000. * st->hs_wait_sum /
	    (double)(st->hs_ok + st->hs_err + st->hs_bh) : 0.,
	    1000. * st->hs_wait_max);
}

void
helper_stats_log(void)
{
	struct helper_pool	*hp;

	TAILQ_FOREACH(hp, &helper_pools, hp_entry)
		helper_stats_pool(hp, "");
	TAILQ_FOREACH(hp, &helper_retired, hp_entry)
		helper_stats_pool(hp, " (retired)");
	if (helper_ndeferred > 0)
		log_info("stats: helper: %zu log lines waiting for answers",
		    helper_ndeferred);
}
