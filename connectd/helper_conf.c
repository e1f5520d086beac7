/* helper_conf.c: external_acl_type lines: parse, check, dump, copy, free */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectd.h"
#include "helper.h"

/* Squid's defaults (src/cf.data.pre, src/external_acl.cc) and ours */
#define HELPER_TTL		3600
#define HELPER_GRACE		1
#define HELPER_CACHE		262144
#define HELPER_CHILDREN_MAX	5
#define HELPER_CHILDREN_IDLE	1
#define HELPER_TIMEOUT		30.0
#define HELPER_LOG_WAIT		3.0

static int	 helper_conf_auth_param(struct conf *, size_t, int, char **,
		    char *, size_t);
static struct helper_conf *helper_conf_get(struct conf *);

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
	{ "%LOGIN",	HF_USER },
	{ "%un",	HF_USER },
	{ "%ul",	HF_USER },
	/* Squid 4+: "SSL client SNI sent to Squid" (cf.data.pre) */
	{ "%ssl::>sni",	HF_SNI },
};

/* on_failure=: what a lookup without an answer counts as */
static const struct {
	const char	*hf_name;
	int		 hf_open;
} helper_failures[] = {
	{ "closed",	0 },	/* ERR: Squid's behaviour, and the default */
	{ "open",	1 },	/* OK */
};

/* cf's helper definitions, made empty the first time; NULL: no memory. */
static struct helper_conf *
helper_conf_get(struct conf *cf)
{
	if (cf->c_helpers == NULL) {
		if ((cf->c_helpers = calloc(1, sizeof(*cf->c_helpers))) == NULL)
			return NULL;
		TAILQ_INIT(&cf->c_helpers->hc_defs);
	}
	return cf->c_helpers;
}

/* The definition called name in cf, or NULL. */
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
	} else if (OPT("on_failure")) {
		for (n = 0; n < (int)nitems(helper_failures); n++)
			if (strcmp(v, helper_failures[n].hf_name) == 0)
				break;
		if (n == (int)nitems(helper_failures)) {
			snprintf(err, errlen, "on_failure=%s: expected open or "
			    "closed", v);
			return -1;
		}
		hd->hd_fail_open = helper_failures[n].hf_open;
		hd->hd_fail_set = 1;
	} else {
		snprintf(err, errlen, "unknown option '%.*s'", (int)klen, arg);
		return -1;
	}
#undef OPT
	return 0;
}

/*
 * external_acl_type NAME [option=value ...] FORMAT ... PROGRAM [ARG ...],
 * as Squid takes it, plus connectd's timeout= and log-wait=.
 */
int
helper_conf_directive(struct conf *cf, size_t lineno, int argc, char **argv,
    char *err, size_t errlen)
{
	struct helper_def	*hd = NULL;
	size_t			 i, j, len, nargs;
	int			 a, queue_set = 0, nttl_set = 0;
	char			*p;

	if (strcmp(argv[0], "auth_param") == 0)
		return helper_conf_auth_param(cf, lineno, argc, argv, err,
		    errlen);
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
	if (helper_conf_get(cf) == NULL)
		goto oom;
	if ((hd = calloc(1, sizeof(*hd))) == NULL)
		goto oom;
	hd->hd_ttl = HELPER_TTL;
	hd->hd_grace = HELPER_GRACE;
	hd->hd_cache = HELPER_CACHE;
	hd->hd_children_max = HELPER_CHILDREN_MAX;
	hd->hd_children_idle = HELPER_CHILDREN_IDLE;
	hd->hd_timeout = HELPER_TIMEOUT;
	hd->hd_log_wait = HELPER_LOG_WAIT;
	hd->hd_lineno = lineno;
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
		for (j = 0; j < nitems(helper_fmts); j++)
			if (strcmp(argv[a], helper_fmts[j].hf_code) == 0)
				break;
		if (j == nitems(helper_fmts)) {
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
		if (helper_fmts[j].hf_fmt == HF_SNI)
			hd->hd_has_sni = 1;
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
helper_conf_needs_hello(const struct conf *cf, const char *name)
{
	const struct helper_def	*hd;

	return (hd = helper_def_find(cf, name)) != NULL && hd->hd_has_sni;
}

/*
 * auth_param lines name a program; %ssl::>sni needs tls_peek, whose
 * reader is what knows the SNI (the line may come before tls_peek, so
 * it is checked here).  acl.c checks that external acls name a helper.
 */
int
helper_conf_finish(struct conf *cf, size_t *lineno, char *err, size_t errlen)
{
	const struct helper_def	*hd;

	if ((hd = helper_conf_auth(cf)) != NULL && (hd->hd_argv == NULL ||
	    hd->hd_argv[0] == NULL)) {
		*lineno = hd->hd_lineno;
		snprintf(err, errlen, "auth_param basic: no 'auth_param basic "
		    "program /path/to/helper' line");
		return -1;
	}
	if (cf->c_helpers == NULL || cf->c_tls_peek)
		return 0;
	TAILQ_FOREACH(hd, &cf->c_helpers->hc_defs, hd_entry)
		if (hd->hd_has_sni) {
			*lineno = hd->hd_lineno;
			snprintf(err, errlen, "external_acl_type %s: %%ssl::>sni "
			    "needs tls_peek on", hd->hd_name);
			return -1;
		}
	return 0;
}

const char *
helper_fmt_name(enum helper_fmt f)
{
	size_t	i;

	for (i = 0; i < nitems(helper_fmts); i++)
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
		if (hd->hd_auth) {
			fprintf(fp, "auth_param basic program");
			for (i = 0; hd->hd_argv[i] != NULL; i++)
				fprintf(fp, " %s", hd->hd_argv[i]);
			fprintf(fp, "\nauth_param basic children %d startup=%d "
			    "idle=%d concurrency=%d\nauth_param basic realm %s\n"
			    "auth_param basic credentialsttl %.0f seconds\n",
			    hd->hd_children_max, hd->hd_children_startup,
			    hd->hd_children_idle, hd->hd_concurrency,
			    hd->hd_realm, hd->hd_ttl);
			continue;
		}
		/*
		 * on_failure= only as written: set or not is not the same
		 * (the policy field's stand-in), and the dump must load back
		 */
		fprintf(fp, "external_acl_type %s ttl=%.0f negative_ttl=%.0f "
		    "grace=%d cache=%zu children-max=%d children-startup=%d "
		    "children-idle=%d concurrency=%d queue-size=%d%s "
		    "timeout=%g log-wait=%g%s", hd->hd_name, hd->hd_ttl,
		    hd->hd_negative_ttl, hd->hd_grace, hd->hd_cache,
		    hd->hd_children_max, hd->hd_children_startup,
		    hd->hd_children_idle, hd->hd_concurrency,
		    hd->hd_queue_size, hd->hd_protocol25 ? " protocol=2.5" : "",
		    hd->hd_timeout, hd->hd_log_wait, !hd->hd_fail_set ? "" :
		    hd->hd_fail_open ? " on_failure=open" :
		    " on_failure=closed");
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

struct helper_def *
helper_def_dup(const struct helper_def *hd)
{
	struct helper_def	*n;
	size_t			 i, argc;

	if ((n = calloc(1, sizeof(*n))) == NULL)
		return NULL;
	*n = *hd;
	n->hd_name = n->hd_text = n->hd_realm = NULL;
	n->hd_argv = NULL;
	for (argc = 0; hd->hd_argv[argc] != NULL; argc++)
		;
	if ((n->hd_name = strdup(hd->hd_name)) == NULL ||
	    (n->hd_text = strdup(hd->hd_text)) == NULL ||
	    (hd->hd_realm != NULL &&
	    (n->hd_realm = strdup(hd->hd_realm)) == NULL) ||
	    (n->hd_argv = calloc(argc + 1, sizeof(char *))) == NULL)
		goto fail;
	for (i = 0; i < argc; i++)
		if ((n->hd_argv[i] = strdup(hd->hd_argv[i])) == NULL)
			goto fail;
	return n;
 fail:
	helper_def_free(n);
	return NULL;
}

void
helper_def_free(struct helper_def *hd)
{
	size_t	i;

	if (hd == NULL)
		return;
	if (hd->hd_argv != NULL)
		for (i = 0; hd->hd_argv[i] != NULL; i++)
			free(hd->hd_argv[i]);
	free(hd->hd_argv);
	free(hd->hd_name);
	free(hd->hd_text);
	free(hd->hd_realm);
	free(hd);
}


/* ------------------------------------------------------------ auth_param */

const struct helper_def *
helper_conf_auth(const struct conf *cf)
{
	return helper_def_find(cf, HELPER_AUTH_NAME);
}

/* argv[from..argc) joined with spaces, malloc'd; NULL if out of memory */
static char *
helper_join(int argc, char **argv, int from)
{
	size_t	 len = 1, n, o = 0;
	char	*s;
	int	 a;

	for (a = from; a < argc; a++)
		len += strlen(argv[a]) + 1;
	if ((s = calloc(1, len)) == NULL)
		return NULL;
	for (a = from; a < argc; a++) {
		if (a > from)
			s[o++] = ' ';
		n = strlen(argv[a]);
		memcpy(s + o, argv[a], n);
		o += n;
	}
	return s;
}

/*
 * auth_param basic program|children|realm|credentialsttl|concurrency ...,
 * as Squid 5 takes them (cf.data.pre, auth_param).  The lines build one
 * helper definition, HELPER_AUTH_NAME, run and cached as an external
 * acl's; a proxy_auth acl asks it.  Squid's defaults: realm "Squid
 * proxy-caching web server" (here "connectd"), credentialsttl 2 hours,
 * children 20.
 */
static int
helper_conf_auth_param(struct conf *cf, size_t lineno, int argc, char **argv,
    char *err, size_t errlen)
{
	struct helper_def	*hd;
	double			 t;
	char			*s, *e;
	long			 n;
	int			 a;

	if (argc < 4) {
		snprintf(err, errlen, "usage: auth_param basic program|children|"
		    "realm|credentialsttl|concurrency VALUE ...");
		return -1;
	}
	if (strcmp(argv[1], "basic") != 0) {
		snprintf(err, errlen, "auth_param scheme '%s': only basic is "
		    "supported", argv[1]);
		return -1;
	}
	if (helper_conf_get(cf) == NULL)
		goto oom;
	if ((hd = helper_def_find(cf, HELPER_AUTH_NAME)) == NULL) {
		if ((hd = calloc(1, sizeof(*hd))) == NULL)
			goto oom;
		hd->hd_auth = 1;
		hd->hd_lineno = lineno;
		hd->hd_ttl = hd->hd_negative_ttl = 7200;
		hd->hd_grace = 0;
		hd->hd_cache = HELPER_CACHE;
		hd->hd_children_max = 20;
		hd->hd_children_idle = 1;
		hd->hd_timeout = HELPER_TIMEOUT;
		hd->hd_fmt[hd->hd_nfmt++] = HF_CRED;
		if ((hd->hd_name = strdup(HELPER_AUTH_NAME)) == NULL ||
		    (hd->hd_realm = strdup("connectd")) == NULL ||
		    (hd->hd_text = strdup("")) == NULL) {
			helper_def_free(hd);
			goto oom;
		}
		TAILQ_INSERT_TAIL(&cf->c_helpers->hc_defs, hd, hd_entry);
	}
	if (strcmp(argv[2], "program") == 0) {
		if (hd->hd_argv != NULL) {
			snprintf(err, errlen, "auth_param basic program is "
			    "already set");
			return -1;
		}
		if ((hd->hd_argv = calloc((size_t)(argc - 2), sizeof(char *))) ==
		    NULL)
			goto oom;
		for (a = 3; a < argc; a++)
			if ((hd->hd_argv[a - 3] = strdup(argv[a])) == NULL)
				goto oom;
	} else if (strcmp(argv[2], "realm") == 0) {
		if ((s = helper_join(argc, argv, 3)) == NULL)
			goto oom;
		if (strpbrk(s, "\"\\") != NULL) {
			free(s);
			snprintf(err, errlen, "auth_param basic realm: no quote "
			    "or backslash (it goes into a quoted-string)");
			return -1;
		}
		free(hd->hd_realm);
		hd->hd_realm = s;
	} else if (strcmp(argv[2], "credentialsttl") == 0) {
		if ((s = helper_join(argc, argv, 3)) == NULL)
			goto oom;
		a = conf_parse_time(s, &t);
		free(s);
		if (a == -1 || t < 0) {
			snprintf(err, errlen, "auth_param basic credentialsttl: "
			    "not a time");
			return -1;
		}
		hd->hd_ttl = hd->hd_negative_ttl = t;
	} else if (strcmp(argv[2], "children") == 0 ||
	    strcmp(argv[2], "concurrency") == 0) {
		n = strtol(argv[3], &e, 10);
		if (*e != '\0' || n < (argv[2][1] == 'h' ? 1 : 0) || n > 1000) {
			snprintf(err, errlen, "auth_param basic %s: '%s' is not a "
			    "count", argv[2], argv[3]);
			return -1;
		}
		if (argv[2][1] == 'h')
			hd->hd_children_max = (int)n;
		else
			hd->hd_concurrency = (int)n;
		/* children N startup=N idle=N concurrency=N */
		for (a = 4; a < argc; a++) {
			int	*to = NULL;

			if ((s = strchr(argv[a], '=')) != NULL) {
				n = strtol(s + 1, &e, 10);
				if (strncmp(argv[a], "startup=", 8) == 0)
					to = &hd->hd_children_startup;
				else if (strncmp(argv[a], "idle=", 5) == 0)
					to = &hd->hd_children_idle;
				else if (strncmp(argv[a], "concurrency=", 12) ==
				    0)
					to = &hd->hd_concurrency;
			}
			if (to == NULL || s[1] == '\0' || *e != '\0' || n < 0 ||
			    n > 1000) {
				snprintf(err, errlen, "auth_param basic %s: "
				    "'%s' is not startup=N, idle=N or "
				    "concurrency=N", argv[2], argv[a]);
				return -1;
			}
			*to = (int)n;
		}
	} else if (strcmp(argv[2], "casesensitive") == 0 ||
	    strcmp(argv[2], "utf8") == 0) {
		/* Squid's; user names are passed on as sent either way */
	} else {
		snprintf(err, errlen, "auth_param basic %s: unknown parameter "
		    "(program, children, realm, credentialsttl, concurrency)",
		    argv[2]);
		return -1;
	}
	hd->hd_queue_size = 2 * hd->hd_children_max;
	if (hd->hd_children_startup > hd->hd_children_max)
		hd->hd_children_startup = hd->hd_children_max;
	if (hd->hd_children_idle > hd->hd_children_max)
		hd->hd_children_idle = hd->hd_children_max;
	/* what a reload compares: every setting */
	free(hd->hd_text);
	if (asprintf(&hd->hd_text, "program=%s realm=%s ttl=%g children=%d "
	    "concurrency=%d", hd->hd_argv != NULL && hd->hd_argv[0] != NULL ?
	    hd->hd_argv[0] : "", hd->hd_realm, hd->hd_ttl, hd->hd_children_max,
	    hd->hd_concurrency) == -1) {
		hd->hd_text = NULL;
		goto oom;
	}
	return 0;
 oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}
