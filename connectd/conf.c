/* conf.c: the Squid-style configuration file: directives, parser, dump */
#include <sys/types.h>
#include <sys/stat.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "connectd.h"

#define CONF_FILE_MAX		(16 * 1024 * 1024)
#define CONF_WS			" \t\r\f\v"
#define CONF_QUOTE_MAX		72	/* line text shown in an error */
#define CONF_MSG_MAX		200	/* message shown in an error */
#define CONF_TIME_MAX		1e9	/* about 31 years */
#define CONF_HEADER_MIN		256
#define CONF_HEADER_MAX		(1024 * 1024)
#define CONF_BUFFER_DEFAULT	(4 * 1024 * 1024)
#define CONF_BUFFER_MAX		(1024 * 1024 * 1024)
#define CONF_LOG_DEFAULT	"/dev/stdout"
#define CONF_DGRAM_DEFAULT	8192	/* rsyslog's default maximum */
#define CONF_DGRAM_MIN		1024	/* room for a line left short */
#define CONF_DGRAM_MAX		65507	/* the most a UDP/IPv4 datagram holds */
#define CONF_SYSLOG_FACILITY	1	/* user: what Squid 5.7 sends */
#define CONF_SYSLOG_SEVERITY	6	/* info: Squid's default */
#define CONF_FORMAT_DEFAULT	"json"
#define CONF_INTERVAL_MIN	1.0	/* access_log_interval, if not 0 */
#define CONF_SPLICE_MIN		(64 * 1024)	/* relay_splice_min */
#define CONF_SPLICE_PIPES	256	/* relay_splice_pipes: 512 fds */
#define CONF_HOSTNAME_DEFAULT	"localhost"	/* gethostname() failed */

struct conf_parse;
struct conf_directive;

typedef int	(*conf_parse_fn)(struct conf_parse *,
		    const struct conf_directive *, int, char **);
typedef void	(*conf_dump_fn)(const struct conf *,
		    const struct conf_directive *, FILE *);

/*
 * One row per directive.  A new directive is a new row: its parser gets
 * the line split into words, its dumper prints it back for `connectd -t -v`.
 */
struct conf_directive {
	const char	*cd_name;
	conf_parse_fn	 cd_parse;
	conf_dump_fn	 cd_dump;	/* NULL for aliases */
	int		 cd_flags;
#define CD_REPEAT	0x01		/* may appear more than once */
#define CD_NONZERO	0x02		/* a time that must be above zero */
	const char	*cd_alias;	/* the canonical name, for an alias */
	size_t		 cd_offset;	/* struct conf field (generic) */
	double		 cd_min;	/* size bounds, generic parsers */
	double		 cd_max;
	/* a directive parsed by another module (acl.c, helper.c) */
	int		(*cd_module)(struct conf *, size_t, int, char **, char *,
			    size_t);
};

/* an access_log whose format is looked up at the end of the file */
struct conf_pending {
	struct access_log_conf	*pf_alc;
	char			*pf_name;
	size_t			 pf_lineno;
	char			*pf_line;
};

struct conf_parse {
	struct conf		*cp_conf;
	const char		*cp_file;
	size_t			 cp_lineno;
	const char		*cp_line;	/* trimmed text of the line */
	char			*cp_err;
	size_t			 cp_errlen;
	size_t			*cp_seen;	/* by directive: first line */
	struct conf_pending	*cp_pending;
	size_t			 cp_npending;
	size_t			 cp_log_none;	/* line of `access_log none` */
	size_t			 cp_metrics;	/* line of metrics_port */
};

struct conf_unit {
	const char	*cu_name;
	double		 cu_scale;
};

static int	 conf_http_port(struct conf_parse *,
		    const struct conf_directive *, int, char **);
static int	 conf_metrics_port(struct conf_parse *,
		    const struct conf_directive *, int, char **);
static int	 conf_time(struct conf_parse *, const struct conf_directive *,
		    int, char **);
static int	 conf_size(struct conf_parse *, const struct conf_directive *,
		    int, char **);
static int	 conf_logformat(struct conf_parse *,
		    const struct conf_directive *, int, char **);
static int	 conf_access_log(struct conf_parse *,
		    const struct conf_directive *, int, char **);
static int	 conf_module(struct conf_parse *,
		    const struct conf_directive *, int, char **);
static int	 conf_dns_nameservers(struct conf_parse *,
		    const struct conf_directive *, int, char **);
static int	 conf_hosts_file(struct conf_parse *,
		    const struct conf_directive *, int, char **);
static int	 conf_count(struct conf_parse *,
		    const struct conf_directive *, int, char **);
static int	 conf_user(struct conf_parse *,
		    const struct conf_directive *, int, char **);
static int	 conf_workers(struct conf_parse *,
		    const struct conf_directive *, int, char **);
static void	 conf_dump_workers(const struct conf *,
		    const struct conf_directive *, FILE *);
static int	 conf_interval(struct conf_parse *,
		    const struct conf_directive *, int, char **);
static int	 conf_hostname(struct conf_parse *,
		    const struct conf_directive *, int, char **);
static void	 conf_dump_hostname(const struct conf *,
		    const struct conf_directive *, FILE *);
static int	 conf_flag(struct conf_parse *,
		    const struct conf_directive *, int, char **);
static void	 conf_dump_flag(const struct conf *,
		    const struct conf_directive *, FILE *);
static void	 conf_dump_count(const struct conf *,
		    const struct conf_directive *, FILE *);
static void	 conf_dump_user(const struct conf *,
		    const struct conf_directive *, FILE *);
static void	 conf_dump_dns(const struct conf *,
		    const struct conf_directive *, FILE *);
static void	 conf_dump_http_port(const struct conf *,
		    const struct conf_directive *, FILE *);
static void	 conf_dump_metrics_port(const struct conf *,
		    const struct conf_directive *, FILE *);
static void	 conf_dump_time(const struct conf *,
		    const struct conf_directive *, FILE *);
static void	 conf_dump_size(const struct conf *,
		    const struct conf_directive *, FILE *);
static void	 conf_dump_logformat(const struct conf *,
		    const struct conf_directive *, FILE *);
static void	 conf_dump_access_log(const struct conf *,
		    const struct conf_directive *, FILE *);

#define CONF_TIME(name, field, flags)					\
	{ name, conf_time, conf_dump_time, flags, NULL,			\
	    offsetof(struct conf, field), 0, CONF_TIME_MAX, NULL }

static const struct conf_directive conf_directives[] = {
	{ "http_port", conf_http_port, conf_dump_http_port, CD_REPEAT, NULL,
	    0, 0, 0, NULL },
	{ "metrics_port", conf_metrics_port, conf_dump_metrics_port, 0, NULL,
	    0, 0, 0, NULL },
	CONF_TIME("connect_timeout", c_connect_timeout, CD_NONZERO),
	CONF_TIME("read_timeout", c_read_timeout, CD_NONZERO),
	CONF_TIME("request_header_timeout", c_request_header_timeout,
	    CD_NONZERO),
	{ "request_timeout", conf_time, NULL, CD_NONZERO,
	    "request_header_timeout",
	    offsetof(struct conf, c_request_header_timeout), 0, CONF_TIME_MAX,
	    NULL },
	CONF_TIME("half_closed_timeout", c_half_closed_timeout, CD_NONZERO),
	CONF_TIME("shutdown_lifetime", c_shutdown_lifetime, 0),
	{ "request_header_max_size", conf_size, conf_dump_size, 0, NULL,
	    offsetof(struct conf, c_request_header_max_size),
	    CONF_HEADER_MIN, CONF_HEADER_MAX, NULL },
	{ "logformat", conf_logformat, conf_dump_logformat, CD_REPEAT, NULL,
	    0, 0, 0, NULL },
	{ "access_log", conf_access_log, conf_dump_access_log, CD_REPEAT,
	    NULL, 0, 0, 0, NULL },
	{ "access_log_interval", conf_interval, conf_dump_time, 0, NULL,
	    offsetof(struct conf, c_access_log_interval), CONF_INTERVAL_MIN,
	    CONF_TIME_MAX, NULL },
	{ "visible_hostname", conf_hostname, conf_dump_hostname, 0, NULL,
	    0, 0, 0, NULL },
	{ "dns_nameservers", conf_dns_nameservers, conf_dump_dns, 0, NULL,
	    0, 0, 0, NULL },
	{ "hosts_file", conf_hosts_file, NULL, 0, NULL, 0, 0, 0, NULL },
	CONF_TIME("client_lifetime", c_client_lifetime, CD_NONZERO),
	CONF_TIME("client_idle_pconn_timeout", c_client_idle_pconn_timeout,
	    CD_NONZERO),
	CONF_TIME("server_idle_pconn_timeout", c_server_idle_pconn_timeout, 0),
	{ "strip_query_terms", conf_flag, conf_dump_flag, 0, NULL,
	    offsetof(struct conf, c_strip_query_terms), 0, 0, NULL },
	{ "tls_peek", conf_flag, conf_dump_flag, 0, NULL,
	    offsetof(struct conf, c_tls_peek), 0, 0, NULL },
	CONF_TIME("tls_peek_timeout", c_tls_peek_timeout, CD_NONZERO),
	{ "tls_hello_required", conf_flag, conf_dump_flag, 0, NULL,
	    offsetof(struct conf, c_tls_hello_required), 0, 0, NULL },
	{ "relay_splice", conf_flag, conf_dump_flag, 0, NULL,
	    offsetof(struct conf, c_relay_splice), 0, 0, NULL },
	{ "relay_splice_min", conf_size, conf_dump_size, 0, NULL,
	    offsetof(struct conf, c_relay_splice_min), 0, CONF_BUFFER_MAX,
	    NULL },
	{ "relay_splice_pipes", conf_count, conf_dump_count, 0, NULL,
	    offsetof(struct conf, c_relay_splice_pipes), 0, 100000, NULL },
	{ "max_connections", conf_count, conf_dump_count, 0, NULL,
	    offsetof(struct conf, c_max_connections), 0, 1000000, NULL },
	{ "client_ip_max_connections", conf_count, conf_dump_count, 0, NULL,
	    offsetof(struct conf, c_client_ip_max_connections), 0, 1000000,
	    NULL },
	{ "workers", conf_workers, conf_dump_workers, 0, NULL, 0, 1,
	    WORKERS_MAX, NULL },
	{ "cache_effective_user", conf_user, conf_dump_user, 0, NULL, 0, 0, 0,
	    NULL },
	{ "external_acl_type", conf_module, NULL, CD_REPEAT, NULL, 0, 0, 0,
	    helper_conf_directive },
	{ "auth_param", conf_module, NULL, CD_REPEAT, NULL, 0, 0, 0,
	    helper_conf_directive },
	{ "acl", conf_module, NULL, CD_REPEAT, NULL, 0, 0, 0,
	    acl_conf_directive },
	{ "http_access", conf_module, NULL, CD_REPEAT, NULL, 0, 0, 0,
	    acl_conf_directive },
};
#define CONF_NDIRECTIVES \
	(sizeof(conf_directives) / sizeof(conf_directives[0]))

/* Squid 5.7's units (cache_cf.cc), singular or plural, any case */
static const struct conf_unit conf_time_units[] = {
	{ "millisecond",	0.001 },
	{ "second",		1 },
	{ "minute",		60 },
	{ "hour",		3600 },
	{ "day",		86400 },
	{ "week",		86400 * 7 },
	{ "fortnight",		86400 * 14 },
	{ "month",		86400 * 30 },
	{ "year",		86400 * 365.2522 },
	{ "decade",		86400 * 365.2522 * 10 },
};

/*
 * syslog names, as in syslog.conf(5), with their RFC 5424 codes.  Squid
 * documents authpriv, daemon, local0..local7 and user, and the
 * priorities err, warning, notice, info and debug; the other names are
 * taken too, but kern, which only the kernel may claim.
 */
struct conf_code {
	const char	*cc_name;
	int		 cc_code;
};

static const struct conf_code conf_facilities[] = {
	{ "user", 1 }, { "mail", 2 }, { "daemon", 3 }, { "auth", 4 },
	{ "syslog", 5 }, { "lpr", 6 }, { "news", 7 }, { "uucp", 8 },
	{ "cron", 9 }, { "authpriv", 10 }, { "ftp", 11 },
	{ "local0", 16 }, { "local1", 17 }, { "local2", 18 }, { "local3", 19 },
	{ "local4", 20 }, { "local5", 21 }, { "local6", 22 }, { "local7", 23 },
};

static const struct conf_code conf_severities[] = {
	{ "emerg", 0 }, { "alert", 1 }, { "crit", 2 }, { "err", 3 },
	{ "warning", 4 }, { "notice", 5 }, { "info", 6 }, { "debug", 7 },
};

static const struct conf_unit conf_size_units[] = {
	{ "bytes",		1 },
	{ "KB",			1024 },
	{ "MB",			1024 * 1024 },
	{ "GB",			1024 * 1024 * 1024 },
};


/* Printable ASCII as is, anything else as \xNN; cut at max with "..." */
static void
conf_escape(char *dst, size_t dstlen, const char *src, size_t srclen,
    size_t max)
{
	static const char	 hex[] = "0123456789abcdef";
	unsigned char		 c;
	size_t			 i, o = 0, w;

	if (dstlen < 4) {
		if (dstlen > 0)
			dst[0] = '\0';
		return;
	}
	if (max > dstlen - 4)
		max = dstlen - 4;	/* room for "..." and the NUL */
	for (i = 0; i < srclen; i++) {
		c = (unsigned char)src[i];
		w = (c >= 0x20 && c < 0x7f) ? 1 : 4;
		if (o + w > max) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (w == 1)
			dst[o++] = c;
		else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		}
	}
	dst[o] = '\0';
}

static void
conf_verror(char *, size_t, const char *, size_t, const char *,
    const char *, va_list) __attribute__((format(printf, 6, 0)));

static void
conf_verror(char *err, size_t errlen, const char *file, size_t lineno,
    const char *line, const char *fmt, va_list ap)
{
	char	 raw[1024], msg[CONF_MSG_MAX + 4];
	char	 qfile[CONF_MSG_MAX + 4], qline[CONF_QUOTE_MAX + 4];

	if (err == NULL || errlen == 0)
		return;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	conf_escape(msg, sizeof(msg), raw, strlen(raw), CONF_MSG_MAX);
	conf_escape(qfile, sizeof(qfile), file, strlen(file), CONF_MSG_MAX);
	if (lineno == 0)
		snprintf(err, errlen, "%s: %s", qfile, msg);
	else if (line == NULL)
		snprintf(err, errlen, "%s:%zu: %s", qfile, lineno, msg);
	else {
		conf_escape(qline, sizeof(qline), line, strlen(line),
		    CONF_QUOTE_MAX);
		snprintf(err, errlen, "%s:%zu: %s: '%s'", qfile, lineno, msg,
		    qline);
	}
}

static int
conf_error(struct conf_parse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Always -1, so that a parser can `return conf_error(...)`. */
static int
conf_error(struct conf_parse *p, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	conf_verror(p->cp_err, p->cp_errlen, p->cp_file, p->cp_lineno,
	    p->cp_line, fmt, ap);
	va_end(ap);
	return -1;
}

static int
conf_error_at(struct conf_parse *p, size_t lineno, const char *line,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
conf_error_at(struct conf_parse *p, size_t lineno, const char *line,
    const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	conf_verror(p->cp_err, p->cp_errlen, p->cp_file, lineno, line, fmt,
	    ap);
	va_end(ap);
	return -1;
}

/* A plain decimal number: no sign, no hex, no inf or nan. */
static int
conf_number(const char *s, size_t len, double *v)
{
	char	 buf[64], *end;
	size_t	 i;

	if (len == 0 || len >= sizeof(buf) ||
	    !(isdigit((unsigned char)s[0]) || s[0] == '.'))
		return -1;
	for (i = 0; i < len; i++)
		if (strchr("0123456789.eE+-", s[i]) == NULL)
			return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	*v = strtod(buf, &end);
	if (*end != '\0' || errno == ERANGE || !isfinite(*v))
		return -1;
	return 0;
}

/* "30seconds" or "16KB": a number with the unit glued on */
static int
conf_glued(const char *s, size_t len)
{
	size_t	 n;

	n = strspn(s, "0123456789.");
	return n > 0 && n < len && isalpha((unsigned char)s[n]);
}

static const struct conf_unit *
conf_unit_find(const struct conf_unit *units, size_t nunits, const char *s,
    int plural)
{
	size_t	 i, n;

	for (i = 0; i < nunits; i++) {
		n = strlen(units[i].cu_name);
		if (strncasecmp(s, units[i].cu_name, n) != 0)
			continue;
		if (s[n] == '\0' || (plural && s[n] == 's' && s[n + 1] == '\0'))
			return &units[i];
	}
	return NULL;
}

static int
conf_time_value(const char *num, const char *unit, double *v, char *err,
    size_t errlen)
{
	const struct conf_unit	*u;
	double			 n;

	if (conf_number(num, strlen(num), &n) == -1) {
		snprintf(err, errlen, "bad time value '%.32s'%s", num,
		    conf_glued(num, strlen(num)) ?
		    " (put a space before the unit)" : "");
		return -1;
	}
	if (unit == NULL) {
		snprintf(err, errlen, "missing time unit "
		    "(e.g. '%.32s seconds')", num);
		return -1;
	}
	if ((u = conf_unit_find(conf_time_units, nitems(conf_time_units),
	    unit, 1)) == NULL) {
		snprintf(err, errlen, "unknown time unit '%.32s'", unit);
		return -1;
	}
	n *= u->cu_scale;
	if (!isfinite(n) || n > CONF_TIME_MAX) {
		snprintf(err, errlen, "time value too large");
		return -1;
	}
	*v = n;
	return 0;
}

/* "NUMBER UNIT" as in Squid; a bare number is bytes, as Squid assumes */
static int
conf_size_value(const char *num, size_t numlen, const char *unit,
    size_t *v, char *err, size_t errlen)
{
	const struct conf_unit	*u;
	double			 n;

	if (conf_number(num, numlen, &n) == -1) {
		snprintf(err, errlen, "bad size value '%.*s'%s",
		    (int)(numlen > 32 ? 32 : numlen), num,
		    conf_glued(num, numlen) ? " (put a space before the unit)" :
		    "");
		return -1;
	}
	if (unit != NULL && *unit != '\0') {
		if ((u = conf_unit_find(conf_size_units,
		    nitems(conf_size_units), unit, 0)) == NULL) {
			snprintf(err, errlen, "unknown size unit '%.32s' "
			    "(bytes, KB, MB or GB)", unit);
			return -1;
		}
		n *= u->cu_scale;
	}
	if (n != floor(n)) {
		snprintf(err, errlen, "size is not a whole number of bytes");
		return -1;
	}
	if (n > (double)CONF_BUFFER_MAX * 4) {
		snprintf(err, errlen, "size too large");
		return -1;
	}
	*v = (size_t)n;
	return 0;
}

int
conf_parse_time(const char *s, double *v)
{
	char		 buf[128], err[128], *num, *unit, *extra, *last;
	size_t		 len;

	len = strlen(s);
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len + 1);
	if ((num = strtok_r(buf, CONF_WS, &last)) == NULL)
		return -1;
	unit = strtok_r(NULL, CONF_WS, &last);
	extra = strtok_r(NULL, CONF_WS, &last);
	if (extra != NULL)
		return -1;
	return conf_time_value(num, unit, v, err, sizeof(err));
}

int
conf_parse_addrport(const char *s, struct sockaddr_storage *ss,
    socklen_t *sslen, char *err, size_t errlen)
{
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	char			 host[INET6_ADDRSTRLEN + 1];
	const char		*port, *colon, *close;
	size_t			 hostlen;
	unsigned long		 n;
	char			*end;

	memset(ss, 0, sizeof(*ss));
	hostlen = 0;
	if (s[0] == '[') {
		if ((close = strchr(s, ']')) == NULL) {
			snprintf(err, errlen, "missing ']' after IPv6 address");
			return -1;
		}
		if (close[1] != ':') {
			snprintf(err, errlen, "missing ':PORT' after ']'");
			return -1;
		}
		hostlen = close - (s + 1);
		if (hostlen == 0 || hostlen >= sizeof(host)) {
			snprintf(err, errlen, "bad IPv6 address");
			return -1;
		}
		memcpy(host, s + 1, hostlen);
		host[hostlen] = '\0';
		port = close + 2;
		sin6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			snprintf(err, errlen, "bad IPv6 address '%s'", host);
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		*sslen = sizeof(*sin6);
	} else if ((colon = strrchr(s, ':')) != NULL) {
		hostlen = colon - s;
		if (memchr(s, ':', hostlen) != NULL) {
			snprintf(err, errlen, "an IPv6 address needs brackets, "
			    "e.g. [::1]:3128");
			return -1;
		}
		if (hostlen == 0 || hostlen >= sizeof(host)) {
			snprintf(err, errlen, "bad address before ':'");
			return -1;
		}
		memcpy(host, s, hostlen);
		host[hostlen] = '\0';
		port = colon + 1;
		sin = (struct sockaddr_in *)ss;
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			snprintf(err, errlen, "'%s' is not a numeric IPv4 "
			    "address", host);
			return -1;
		}
		sin->sin_family = AF_INET;
		*sslen = sizeof(*sin);
	} else {
		/* a bare port is every address, IPv4 and IPv6, like Squid */
		port = s;
		sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		*sslen = sizeof(*sin6);
	}

	if (!isdigit((unsigned char)port[0])) {
		snprintf(err, errlen, "missing or bad port");
		return -1;
	}
	errno = 0;
	n = strtoul(port, &end, 10);
	if (*end != '\0' || errno != 0 || n < 1 || n > 65535) {
		snprintf(err, errlen, "bad port '%.16s' (1..65535)", port);
		return -1;
	}
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(n);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(n);
	return 0;
}

/* ------------------------------------------------------------ directives */

static int
conf_http_port(struct conf_parse *p, const struct conf_directive *d,
    int argc, char **argv)
{
	struct conf		*c = p->cp_conf;
	struct listen_conf	*lc, *o;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 msg[128];

	if (argc < 2)
		return conf_error(p, "http_port needs [ADDRESS:]PORT");
	if (argc > 2)
		return conf_error(p, "http_port option '%s' is not supported",
		    argv[2]);
	if (conf_parse_addrport(argv[1], &ss, &sslen, msg, sizeof(msg)) == -1)
		return conf_error(p, "http_port: %s", msg);
	TAILQ_FOREACH(o, &c->c_listens, lc_entry)
		if (addr_bind_clash(&ss, &o->lc_addr))
			return conf_error(p, "http_port %s clashes with "
			    "http_port %s", argv[1], o->lc_text);
	if ((lc = calloc(1, sizeof(*lc))) == NULL)
		return conf_error(p, "out of memory");
	if ((lc->lc_text = strdup(argv[1])) == NULL) {
		free(lc);
		return conf_error(p, "out of memory");
	}
	lc->lc_addr = ss;
	lc->lc_addrlen = sslen;
	TAILQ_INSERT_TAIL(&c->c_listens, lc, lc_entry);
	return 0;
}

/*
 * metrics_port [ADDRESS:]PORT, as http_port takes it, or none: the
 * listener of /metrics, /healthz and /readyz (admin.c).  Whether it
 * clashes with an http_port is checked once the whole file is read.
 */
static int
conf_metrics_port(struct conf_parse *p, const struct conf_directive *d,
    int argc, char **argv)
{
	struct conf		*c = p->cp_conf;
	struct listen_conf	*lc;
	char			 msg[128];

	if (argc != 2)
		return conf_error(p, "usage: metrics_port [ADDRESS:]PORT | "
		    "none");
	if (strcmp(argv[1], "none") == 0)
		return 0;
	if ((lc = calloc(1, sizeof(*lc))) == NULL)
		return conf_error(p, "out of memory");
	if (conf_parse_addrport(argv[1], &lc->lc_addr, &lc->lc_addrlen, msg,
	    sizeof(msg)) == -1) {
		free(lc);
		return conf_error(p, "metrics_port: %s", msg);
	}
	if ((lc->lc_text = strdup(argv[1])) == NULL) {
		free(lc);
		return conf_error(p, "out of memory");
	}
	c->c_metrics = lc;
	p->cp_metrics = p->cp_lineno;
	return 0;
}

static int
conf_time(struct conf_parse *p, const struct conf_directive *d, int argc,
    char **argv)
{
	double	 v;
	char	 msg[128];

	if (argc < 2)
		return conf_error(p, "%s needs a time, e.g. '%s 30 seconds'",
		    argv[0], argv[0]);
	if (argc > 3)
		return conf_error(p, "unexpected '%s'%s", argv[3],
		    argv[3][0] == '#' ?
		    " (comments must start their own line)" : "");
	if (conf_time_value(argv[1], argc > 2 ? argv[2] : NULL, &v, msg,
	    sizeof(msg)) == -1)
		return conf_error(p, "%s", msg);
	if ((d->cd_flags & CD_NONZERO) && v <= 0)
		return conf_error(p, "%s must be more than zero", argv[0]);
	*(double *)((char *)p->cp_conf + d->cd_offset) = v;
	return 0;
}

static int
conf_size(struct conf_parse *p, const struct conf_directive *d, int argc,
    char **argv)
{
	size_t	 v;
	char	 msg[128];

	if (argc < 2)
		return conf_error(p, "%s needs a size, e.g. '%s 16 KB'",
		    argv[0], argv[0]);
	if (argc > 3)
		return conf_error(p, "unexpected '%s'%s", argv[3],
		    argv[3][0] == '#' ?
		    " (comments must start their own line)" : "");
	if (conf_size_value(argv[1], strlen(argv[1]),
	    argc > 2 ? argv[2] : NULL, &v, msg, sizeof(msg)) == -1)
		return conf_error(p, "%s", msg);
	if (v < d->cd_min || v > d->cd_max)
		return conf_error(p, "%s must be between %.0f and %.0f bytes",
		    argv[0], d->cd_min, d->cd_max);
	*(size_t *)((char *)p->cp_conf + d->cd_offset) = v;
	return 0;
}

/* The text after the first n words of s and the whitespace that follows. */
static const char *
conf_skip_words(const char *s, int n)
{
	s += strspn(s, CONF_WS);
	while (n-- > 0) {
		s += strcspn(s, CONF_WS);
		s += strspn(s, CONF_WS);
	}
	return s;
}

static int
conf_name_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("_-.", *s) == NULL)
			return 0;
	return 1;
}

static struct logformat_conf *
conf_logformat_find(const struct conf *c, const char *name)
{
	struct logformat_conf	*lfc;

	TAILQ_FOREACH(lfc, &c->c_logformats, lfc_entry)
		if (strcmp(lfc->lfc_name, name) == 0)
			return lfc;
	return NULL;
}

static int
conf_logformat(struct conf_parse *p, const struct conf_directive *d,
    int argc, char **argv)
{
	struct conf		*c = p->cp_conf;
	struct logformat_conf	*lfc;
	const char		*template;
	char			 msg[256];

	if (argc < 3)
		return conf_error(p, "logformat needs a NAME and a TEMPLATE");
	if (!conf_name_ok(argv[1]))
		return conf_error(p, "bad logformat name '%s' (letters, "
		    "digits, '_', '-' and '.')", argv[1]);
	if (logformat_builtin(argv[1]) != NULL)
		return conf_error(p, "logformat '%s' is built in and cannot "
		    "be redefined", argv[1]);
	if (conf_logformat_find(c, argv[1]) != NULL)
		return conf_error(p, "logformat '%s' is already defined",
		    argv[1]);
	template = conf_skip_words(p->cp_line, 2);

	if ((lfc = calloc(1, sizeof(*lfc))) == NULL ||
	    (lfc->lfc_name = strdup(argv[1])) == NULL ||
	    (lfc->lfc_template = strdup(template)) == NULL) {
		snprintf(msg, sizeof(msg), "out of memory");
		goto fail;
	}
	msg[0] = '\0';
	if ((lfc->lfc_format = logformat_compile(lfc->lfc_name, template, msg,
	    sizeof(msg))) == NULL) {
		if (msg[0] == '\0')
			snprintf(msg, sizeof(msg), "bad logformat template");
		goto fail;
	}
	TAILQ_INSERT_TAIL(&c->c_logformats, lfc, lfc_entry);
	return 0;
 fail:
	if (lfc != NULL) {
		free(lfc->lfc_name);
		free(lfc->lfc_template);
		free(lfc);
	}
	return conf_error(p, "%s", msg);
}

/* A syslog name, "local4" or Squid's "LOG_LOCAL4", in any case. */
static const struct conf_code *
conf_code_find(const struct conf_code *t, size_t n, const char *s,
    size_t len)
{
	size_t	 i;

	if (len > 4 && strncasecmp(s, "LOG_", 4) == 0) {
		s += 4;
		len -= 4;
	}
	for (i = 0; i < n; i++)
		if (strlen(t[i].cc_name) == len &&
		    strncasecmp(t[i].cc_name, s, len) == 0)
			return &t[i];
	return NULL;
}

static const char *
conf_code_name(const struct conf_code *t, size_t n, int code)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (t[i].cc_code == code)
			return t[i].cc_name;
	return "?";
}

/*
 * HOST:PORT as Squid's GetHostWithPort() takes it: a name, an IPv4
 * address or a bracketed IPv6 one, then a port.  Nothing is resolved
 * here: the output's writer thread does that when it connects, so that
 * neither -t nor a reload waits for DNS.
 */
static int
conf_hostport(const char *s, char **hostp, char **portp, char *msg,
    size_t msglen)
{
	struct in6_addr	 a6;
	char		 host[HOST_NAME_MAX_LEN + 1];
	const char	*port, *colon, *close;
	size_t		 hl, i;
	unsigned long	 n;
	char		*end;

	if (s[0] == '[') {
		if ((close = strchr(s, ']')) == NULL) {
			snprintf(msg, msglen, "missing ']' after IPv6 address");
			return -1;
		}
		hl = (size_t)(close - (s + 1));
		if (hl == 0 || hl >= INET6_ADDRSTRLEN) {
			snprintf(msg, msglen, "bad IPv6 address");
			return -1;
		}
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1) {
			snprintf(msg, msglen, "bad IPv6 address '%.64s'", host);
			return -1;
		}
		if (close[1] != ':') {
			snprintf(msg, msglen, "missing ':PORT' after ']'");
			return -1;
		}
		port = close + 2;
	} else {
		if ((colon = strrchr(s, ':')) == NULL) {
			snprintf(msg, msglen, "needs HOST:PORT, e.g. "
			    "127.0.0.1:5170");
			return -1;
		}
		hl = (size_t)(colon - s);
		if (memchr(s, ':', hl) != NULL) {
			snprintf(msg, msglen, "an IPv6 address needs brackets, "
			    "e.g. [::1]:5170");
			return -1;
		}
		if (hl == 0) {
			snprintf(msg, msglen, "missing host before ':'");
			return -1;
		}
		if (hl > HOST_NAME_MAX_LEN) {
			snprintf(msg, msglen, "host name too long");
			return -1;
		}
		for (i = 0; i < hl; i++)
			if (!isalnum((unsigned char)s[i]) &&
			    strchr("-._", s[i]) == NULL) {
				snprintf(msg, msglen, "bad host name '%.*s'",
				    (int)(hl > 64 ? 64 : hl), s);
				return -1;
			}
		memcpy(host, s, hl);
		host[hl] = '\0';
		port = colon + 1;
	}
	if (!isdigit((unsigned char)port[0])) {
		snprintf(msg, msglen, "missing or bad port");
		return -1;
	}
	errno = 0;
	n = strtoul(port, &end, 10);
	if (*end != '\0' || errno != 0 || n < 1 || n > 65535) {
		snprintf(msg, msglen, "bad port '%.16s' (1..65535)", port);
		return -1;
	}
	if ((*hostp = strdup(host)) == NULL ||
	    asprintf(portp, "%lu", n) == -1) {
		free(*hostp);
		*hostp = NULL;
		*portp = NULL;
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * syslog:FACILITY.PRIORITY, Squid's place for its syslog module.  As in
 * Squid either may come alone, "|" may stand for ".", and the names may
 * be syslog.conf's or LOG_ constants.  Squid 5.7 sends LOG_USER when no
 * facility is named (it never calls openlog(3)) and ORs the priority into
 * LOG_INFO (so that syslog:daemon.err arrives as daemon.debug, and a lone
 * syslog:local4 is ignored); connectd keeps the defaults, user.info, and
 * sends what is named.
 */
static int
conf_syslog_place(struct conf_parse *p, const char *place,
    struct access_log_conf *alc)
{
	const struct conf_code	*c;
	const char		*s, *e;
	size_t			 len;
	int			 fac = 0, sev = 0;

	alc->alc_facility = CONF_SYSLOG_FACILITY;
	alc->alc_severity = CONF_SYSLOG_SEVERITY;
	if (*place == '\0')
		return 0;
	for (s = place;; s = e + 1) {
		e = s + strcspn(s, ".|");
		if ((len = (size_t)(e - s)) == 0)
			return conf_error(p, "access_log syslog: empty facility "
			    "or priority");
		if ((c = conf_code_find(conf_facilities,
		    nitems(conf_facilities), s, len)) != NULL) {
			if (fac++)
				return conf_error(p, "access_log syslog: two "
				    "facilities");
			alc->alc_facility = c->cc_code;
		} else if ((c = conf_code_find(conf_severities,
		    nitems(conf_severities), s, len)) != NULL) {
			if (sev++)
				return conf_error(p, "access_log syslog: two "
				    "priorities");
			alc->alc_severity = c->cc_code;
		} else
			return conf_error(p, "access_log syslog: unknown "
			    "facility or priority '%.*s' (e.g. "
			    "syslog:local4.info)", (int)(len > 32 ? 32 : len), s);
		if (*e == '\0')
			return 0;
	}
}

/*
 * Squid's modules (access_log MODULE:PLACE): stdio:PATH (or a bare
 * path), tcp://HOST:PORT, udp://HOST:PORT, syslog[:FACILITY.PRIORITY].
 * Squid also takes tcp:HOST:PORT, without the slashes; so does connectd.
 */
static int
conf_access_log_module(struct conf_parse *p, const char *where,
    struct access_log_conf *alc)
{
	const char	*place;
	char		 msg[128];
	size_t		 n;

	alc->alc_kind = ALK_STDIO;
	if (strncmp(where, "stdio:", 6) == 0) {
		if (where[6] == '\0')
			return conf_error(p, "access_log stdio: needs a "
			    "path");
		alc->alc_path = strdup(where + 6);
		return alc->alc_path == NULL ? conf_error(p, "out of memory") :
		    0;
	}
	if (strncmp(where, "tcp:", 4) == 0 || strncmp(where, "udp:", 4) == 0) {
		alc->alc_kind = where[0] == 't' ? ALK_TCP : ALK_UDP;
		place = where + 4;
		if (strncmp(place, "//", 2) == 0)
			place += 2;
		if (conf_hostport(place, &alc->alc_host, &alc->alc_port, msg,
		    sizeof(msg)) == -1)
			return conf_error(p, "access_log %.3s: %s", where, msg);
		return 0;
	}
	if (strcmp(where, "syslog") == 0 || strncmp(where, "syslog:", 7) == 0) {
		alc->alc_kind = ALK_SYSLOG;
		return conf_syslog_place(p, where[6] == ':' ? where + 7 : "",
		    alc);
	}
	if (strncmp(where, "daemon:", 7) == 0)
		return conf_error(p, "access_log module 'daemon' is not "
		    "supported: stdio:PATH already writes from a thread of "
		    "its own");
	n = strspn(where, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
	if (n > 0 && where[n] == ':' && isalpha((unsigned char)where[0]))
		return conf_error(p, "unknown access_log module '%.*s' "
		    "(stdio, tcp, udp, syslog)", (int)n, where);
	/* a bare path is stdio, as in Squid */
	alc->alc_path = strdup(where);
	return alc->alc_path == NULL ? conf_error(p, "out of memory") : 0;
}

/* syslog's server=: unix:PATH (or PATH), udp://HOST:PORT */
static int
conf_syslog_server(struct conf_parse *p, const char *v,
    struct access_log_conf *alc)
{
	char	 msg[128];

	if (alc->alc_path != NULL || alc->alc_host != NULL)
		return conf_error(p, "server= given twice");
	if (strncmp(v, "udp:", 4) == 0) {
		v += 4;
		if (strncmp(v, "//", 2) == 0)
			v += 2;
		if (conf_hostport(v, &alc->alc_host, &alc->alc_port, msg,
		    sizeof(msg)) == -1)
			return conf_error(p, "server=udp: %s", msg);
		return 0;
	}
	if (strncmp(v, "unix:", 5) == 0)
		v += 5;
	if (v[0] != '/')
		return conf_error(p, "server= needs unix:/PATH or "
		    "udp://HOST:PORT");
	/* sizeof(sun_path), less its NUL */
	if (strlen(v) > 107)
		return conf_error(p, "server=: the socket path is too long");
	if ((alc->alc_path = strdup(v)) == NULL)
		return conf_error(p, "out of memory");
	return 0;
}

/* The canonical module:place, for conf_dump() and the sink's messages. */
static int
conf_access_log_name(struct access_log_conf *alc)
{
	const char	*br = "", *ket = "";
	int		 rv = 0;

	if (alc->alc_host != NULL && strchr(alc->alc_host, ':') != NULL) {
		br = "[";
		ket = "]";
	}
	switch (alc->alc_kind) {
	case ALK_STDIO:
		alc->alc_name = strdup(alc->alc_path);
		break;
	case ALK_TCP:
	case ALK_UDP:
		rv = asprintf(&alc->alc_name, "%s://%s%s%s:%s",
		    alc->alc_kind == ALK_TCP ? "tcp" : "udp", br, alc->alc_host,
		    ket, alc->alc_port);
		break;
	case ALK_SYSLOG:
		rv = asprintf(&alc->alc_name, "syslog:%s.%s",
		    conf_code_name(conf_facilities, nitems(conf_facilities),
		    alc->alc_facility), conf_code_name(conf_severities,
		    nitems(conf_severities), alc->alc_severity));
		break;
	}
	if (rv == -1)
		alc->alc_name = NULL;
	return alc->alc_name == NULL ? -1 : 0;
}

static void
conf_access_log_free(struct access_log_conf *alc)
{
	if (alc == NULL)
		return;
	free(alc->alc_name);
	free(alc->alc_path);
	free(alc->alc_host);
	free(alc->alc_port);
	free(alc->alc_line);
	free(alc);
}

static int
conf_access_log(struct conf_parse *p, const struct conf_directive *d,
    int argc, char **argv)
{
	struct conf		*c = p->cp_conf;
	struct access_log_conf	*alc;
	struct conf_pending	*pf, *npf;
	const char		*format = NULL, *v;
	size_t			 bufsz = CONF_BUFFER_DEFAULT, numlen;
	size_t			 dgram = 0;
	char			 msg[128];
	int			 i, rv = -1;

	if (argc < 2)
		return conf_error(p, "access_log needs a module:place "
		    "(stdio:PATH, tcp://HOST:PORT, udp://HOST:PORT, syslog) "
		    "or none");
	if (strcmp(argv[1], "none") == 0) {
		if (argc > 2)
			return conf_error(p, "unexpected '%s' after "
			    "access_log none", argv[2]);
		if (p->cp_log_none == 0)
			p->cp_log_none = p->cp_lineno;
		return 0;
	}
	if (p->cp_log_none != 0)
		return conf_error(p, "access_log after 'access_log none' "
		    "(line %zu) is never used", p->cp_log_none);
	if ((alc = calloc(1, sizeof(*alc))) == NULL)
		return conf_error(p, "out of memory");
	if (conf_access_log_module(p, argv[1], alc) == -1)
		goto out;

	for (i = 2; i < argc; i++) {
		if (strncmp(argv[i], "logformat=", 10) == 0) {
			if (format != NULL) {
				conf_error(p, "access_log format given twice");
				goto out;
			}
			format = argv[i] + 10;
			if (*format == '\0') {
				conf_error(p, "logformat= needs a name");
				goto out;
			}
		} else if (strncmp(argv[i], "buffer-size=", 12) == 0) {
			v = argv[i] + 12;
			numlen = strspn(v, "0123456789.");
			if (conf_size_value(v, numlen, v + numlen, &bufsz, msg,
			    sizeof(msg)) == -1) {
				conf_error(p, "buffer-size: %s", msg);
				goto out;
			}
			if (bufsz < 1 || bufsz > CONF_BUFFER_MAX) {
				conf_error(p, "buffer-size must be between 1 "
				    "byte and 1 GB");
				goto out;
			}
		} else if (strncmp(argv[i], "datagram-size=", 14) == 0) {
			if (alc->alc_kind != ALK_UDP &&
			    alc->alc_kind != ALK_SYSLOG) {
				conf_error(p, "datagram-size= is for udp:// "
				    "and syslog outputs");
				goto out;
			}
			v = argv[i] + 14;
			numlen = strspn(v, "0123456789.");
			if (conf_size_value(v, numlen, v + numlen, &dgram, msg,
			    sizeof(msg)) == -1) {
				conf_error(p, "datagram-size: %s", msg);
				goto out;
			}
			if (dgram < CONF_DGRAM_MIN || dgram > CONF_DGRAM_MAX) {
				conf_error(p, "datagram-size must be between "
				    "%d and %d bytes", CONF_DGRAM_MIN,
				    CONF_DGRAM_MAX);
				goto out;
			}
		} else if (strncmp(argv[i], "server=", 7) == 0) {
			if (alc->alc_kind != ALK_SYSLOG) {
				conf_error(p, "server= is for syslog outputs");
				goto out;
			}
			if (conf_syslog_server(p, argv[i] + 7, alc) == -1)
				goto out;
		} else if (strcmp(argv[i], "on-error=drop") == 0) {
			/* connectd always drops and counts; nothing to set */
		} else if (strchr(argv[i], '=') != NULL) {
			conf_error(p, "access_log option '%s' is not supported",
			    argv[i]);
			goto out;
		} else if (format == NULL && i == 2) {
			format = argv[i];
		} else {
			conf_error(p, "unexpected '%s' (ACLs on access_log are "
			    "not supported)", argv[i]);
			goto out;
		}
	}
	if (format == NULL)
		format = CONF_FORMAT_DEFAULT;
	if (dgram == 0 && (alc->alc_kind == ALK_UDP ||
	    alc->alc_kind == ALK_SYSLOG))
		dgram = CONF_DGRAM_DEFAULT;

	if ((npf = reallocarray(p->cp_pending, p->cp_npending + 1,
	    sizeof(*npf))) == NULL) {
		conf_error(p, "out of memory");
		goto out;
	}
	p->cp_pending = npf;
	pf = &npf[p->cp_npending];
	memset(pf, 0, sizeof(*pf));
	if (conf_access_log_name(alc) == -1 ||
	    (pf->pf_name = strdup(format)) == NULL ||
	    (pf->pf_line = strdup(p->cp_line)) == NULL ||
	    (alc->alc_line = strdup(p->cp_line)) == NULL) {
		free(pf->pf_name);
		free(pf->pf_line);
		conf_error(p, "out of memory");
		goto out;
	}
	alc->alc_buffer_size = bufsz;
	alc->alc_datagram_size = dgram;
	alc->alc_lineno = p->cp_lineno;
	pf->pf_alc = alc;
	pf->pf_lineno = p->cp_lineno;
	p->cp_npending++;
	TAILQ_INSERT_TAIL(&c->c_access_logs, alc, alc_entry);
	alc = NULL;
	rv = 0;
 out:
	conf_access_log_free(alc);
	return rv;
}

static int
conf_module(struct conf_parse *p, const struct conf_directive *d, int argc,
    char **argv)
{
	char	 err[ERRBUF_LEN];

	err[0] = '\0';
	if (d->cd_module(p->cp_conf, p->cp_lineno, argc, argv, err,
	    sizeof(err)) == -1)
		return conf_error(p, "%s", err[0] ? err : "invalid line");
	return 0;
}

/* dns_nameservers IP ...: kept as the "ip,ip" list c-ares takes */
static int
conf_dns_nameservers(struct conf_parse *p, const struct conf_directive *d,
    int argc, char **argv)
{
	struct in6_addr	 a6;
	struct in_addr	 a4;
	size_t		 len = 0, n;
	char		*list;
	int		 i;

	if (argc < 2)
		return conf_error(p, "%s needs at least one address", argv[0]);
	for (i = 1; i < argc; i++) {
		if (inet_pton(AF_INET, argv[i], &a4) != 1 &&
		    inet_pton(AF_INET6, argv[i], &a6) != 1)
			return conf_error(p, "'%s' is not an IP address",
			    argv[i]);
		len += strlen(argv[i]) + 3;
	}
	if ((list = calloc(1, len + 1)) == NULL)
		return conf_error(p, "out of memory");
	for (i = 1, n = 0; i < argc; i++)
		n += snprintf(list + n, len + 1 - n, "%s%s%s%s",
		    i > 1 ? "," : "", strchr(argv[i], ':') ? "[" : "",
		    argv[i], strchr(argv[i], ':') ? "]" : "");
	free(p->cp_conf->c_dns_nameservers);
	p->cp_conf->c_dns_nameservers = list;
	return 0;
}

static int
conf_hosts_file(struct conf_parse *p, const struct conf_directive *d,
    int argc, char **argv)
{
	if (argc != 2)
		return conf_error(p, "usage: hosts_file PATH");
	if (argv[1][0] != '/')
		return conf_error(p, "hosts_file needs an absolute path");
	free(p->cp_conf->c_hosts_file);
	if ((p->cp_conf->c_hosts_file = strdup(argv[1])) == NULL)
		return conf_error(p, "out of memory");
	return 0;
}

/* A count; 0 is the default (none, or derived); -1 is Squid's "none" */
static int
conf_count(struct conf_parse *p, const struct conf_directive *d, int argc,
    char **argv)
{
	double	 v;

	if (argc != 2)
		return conf_error(p, "usage: %s NUMBER", argv[0]);
	if (strcmp(argv[1], "-1") == 0)
		v = 0;
	else if (conf_number(argv[1], strlen(argv[1]), &v) == -1 ||
	    v != floor(v) || v < d->cd_min || v > d->cd_max)
		return conf_error(p, "%s must be a whole number from %.0f to "
		    "%.0f", argv[0], d->cd_min, d->cd_max);
	*(unsigned *)((char *)p->cp_conf + d->cd_offset) = (unsigned)v;
	return 0;
}

/*
 * Squid's `workers N`: N event loops.  "auto" (not Squid's) is one per
 * CPU this process may run on, counted when connectd starts
 * (workers_count()); kept here as 0.
 */
static int
conf_workers(struct conf_parse *p, const struct conf_directive *d, int argc,
    char **argv)
{
	double	 v;

	if (argc != 2)
		return conf_error(p, "usage: %s NUMBER|auto", argv[0]);
	if (strcasecmp(argv[1], "auto") == 0) {
		p->cp_conf->c_workers = 0;
		return 0;
	}
	if (conf_number(argv[1], strlen(argv[1]), &v) == -1 ||
	    v != floor(v) || v < d->cd_min || v > d->cd_max)
		return conf_error(p, "%s must be auto or a whole number from "
		    "%.0f to %.0f", argv[0], d->cd_min, d->cd_max);
	p->cp_conf->c_workers = (unsigned)v;
	return 0;
}

/* Only when set: -t -v of a file without it prints what it always did. */
static void
conf_dump_workers(const struct conf *c, const struct conf_directive *d,
    FILE *fp)
{
	if (c->c_workers == 0)
		fprintf(fp, "%s auto\n", d->cd_name);
	else if (c->c_workers != 1)
		fprintf(fp, "%s %u\n", d->cd_name, c->c_workers);
}

/* on or off, as Squid writes them */
static int
conf_flag(struct conf_parse *p, const struct conf_directive *d, int argc,
    char **argv)
{
	int	 v;

	if (argc != 2 || ((v = strcasecmp(argv[1], "on") == 0) == 0 &&
	    strcasecmp(argv[1], "off") != 0))
		return conf_error(p, "usage: %s on|off", argv[0]);
	*(int *)((char *)p->cp_conf + d->cd_offset) = v;
	return 0;
}

static void
conf_dump_flag(const struct conf *c, const struct conf_directive *d,
    FILE *fp)
{
	fprintf(fp, "%s %s\n", d->cd_name,
	    *(const int *)((const char *)c + d->cd_offset) ? "on" : "off");
}

static int
conf_user(struct conf_parse *p, const struct conf_directive *d, int argc,
    char **argv)
{
	if (argc != 2)
		return conf_error(p, "usage: %s USER", argv[0]);
	free(p->cp_conf->c_effective_user);
	if ((p->cp_conf->c_effective_user = strdup(argv[1])) == NULL)
		return conf_error(p, "out of memory");
	return 0;
}

static void
conf_dump_count(const struct conf *c, const struct conf_directive *d,
    FILE *fp)
{
	fprintf(fp, "%s %u\n", d->cd_name,
	    *(const unsigned *)((const char *)c + d->cd_offset));
}

/*
 * access_log_interval: 0 turns interim records off; anything shorter
 * than a second is refused (a line per tunnel per second is already
 * more than a log pipeline wants).
 */
static int
conf_interval(struct conf_parse *p, const struct conf_directive *d, int argc,
    char **argv)
{
	double	 v;

	if (conf_time(p, d, argc, argv) == -1)
		return -1;
	v = *(double *)((char *)p->cp_conf + d->cd_offset);
	if (v != 0 && v < d->cd_min)
		return conf_error(p, "%s must be 0 (off) or at least 1 second",
		    argv[0]);
	return 0;
}

/*
 * Squid's visible_hostname: the name of this proxy, the log line's
 * "proxy".  One word of printable ASCII.
 */
static int
conf_hostname(struct conf_parse *p, const struct conf_directive *d,
    int argc, char **argv)
{
	const char	*s;

	if (argc != 2)
		return conf_error(p, "usage: %s NAME", argv[0]);
	if (strlen(argv[1]) > HOST_NAME_MAX_LEN)
		return conf_error(p, "%s: longer than %d bytes", argv[0],
		    HOST_NAME_MAX_LEN);
	for (s = argv[1]; *s != '\0'; s++)
		if (*s <= ' ' || *s >= 0x7f)
			return conf_error(p, "%s: only printable ASCII",
			    argv[0]);
	free(p->cp_conf->c_visible_hostname);
	if ((p->cp_conf->c_visible_hostname = strdup(argv[1])) == NULL)
		return conf_error(p, "out of memory");
	return 0;
}

static void
conf_dump_hostname(const struct conf *c, const struct conf_directive *d,
    FILE *fp)
{
	fprintf(fp, "%s %s\n", d->cd_name, c->c_visible_hostname);
}

static void
conf_dump_user(const struct conf *c, const struct conf_directive *d,
    FILE *fp)
{
	if (c->c_effective_user != NULL)
		fprintf(fp, "%s %s\n", d->cd_name, c->c_effective_user);
}

static void
conf_dump_dns(const struct conf *c, const struct conf_directive *d,
    FILE *fp)
{
	const char	*s;

	if (c->c_dns_nameservers != NULL) {
		fputs("dns_nameservers ", fp);
		for (s = c->c_dns_nameservers; *s != '\0'; s++)
			if (*s != '[' && *s != ']')
				fputc(*s == ',' ? ' ' : *s, fp);
		fputc('\n', fp);
	}
	if (c->c_hosts_file != NULL)
		fprintf(fp, "hosts_file %s\n", c->c_hosts_file);
}

/* ----------------------------------------------------------------- parse */

static const struct conf_directive *
conf_directive_find(const char *name, size_t *slot)
{
	const struct conf_directive	*d;
	size_t				 i, j;

	for (i = 0; i < CONF_NDIRECTIVES; i++) {
		d = &conf_directives[i];
		if (strcasecmp(d->cd_name, name) != 0)
			continue;
		*slot = i;
		if (d->cd_alias != NULL)
			for (j = 0; j < CONF_NDIRECTIVES; j++)
				if (strcmp(conf_directives[j].cd_name,
				    d->cd_alias) == 0)
					*slot = j;
		return d;
	}
	return NULL;
}

/* One trimmed, non-empty, non-comment line. */
static int
conf_line(struct conf_parse *p, char *words, char ***argvp, size_t *argcap)
{
	const struct conf_directive	*d;
	char				**argv = *argvp, **nargv, *w, *last;
	size_t				 argc = 0, slot;

	for (w = strtok_r(words, CONF_WS, &last); w != NULL;
	    w = strtok_r(NULL, CONF_WS, &last)) {
		if (argc + 1 >= *argcap) {
			if ((nargv = reallocarray(argv, *argcap * 2 + 16,
			    sizeof(*argv))) == NULL)
				return conf_error(p, "out of memory");
			*argvp = argv = nargv;
			*argcap = *argcap * 2 + 16;
		}
		argv[argc++] = w;
	}
	argv[argc] = NULL;

	if ((d = conf_directive_find(argv[0], &slot)) == NULL)
		return conf_error(p, "unknown directive '%s'", argv[0]);
	if (!(d->cd_flags & CD_REPEAT) && p->cp_seen[slot] != 0)
		return conf_error(p, "%s already set on line %zu", argv[0],
		    p->cp_seen[slot]);
	if (p->cp_seen[slot] == 0)
		p->cp_seen[slot] = p->cp_lineno;
	return d->cd_parse(p, d, (int)argc, argv);
}

static int
conf_finish(struct conf_parse *p)
{
	struct conf		*c = p->cp_conf;
	struct access_log_conf	*alc;
	struct logformat_conf	*lfc;
	struct listen_conf	*lc;
	struct conf_pending	*pf;
	size_t			 i, lineno;
	char			 err[ERRBUF_LEN];

	for (i = 0; i < p->cp_npending; i++) {
		pf = &p->cp_pending[i];
		if ((lfc = conf_logformat_find(c, pf->pf_name)) != NULL)
			pf->pf_alc->alc_format = lfc->lfc_format;
		else if ((pf->pf_alc->alc_format =
		    logformat_builtin(pf->pf_name)) == NULL)
			return conf_error_at(p, pf->pf_lineno, pf->pf_line,
			    "unknown logformat '%s'", pf->pf_name);
	}
	if (TAILQ_EMPTY(&c->c_listens))
		return conf_error_at(p, 0, NULL, "no http_port line");
	if (c->c_metrics != NULL)
		TAILQ_FOREACH(lc, &c->c_listens, lc_entry)
			if (addr_bind_clash(&c->c_metrics->lc_addr,
			    &lc->lc_addr))
				return conf_error_at(p, p->cp_metrics, NULL,
				    "metrics_port %s clashes with http_port %s",
				    c->c_metrics->lc_text, lc->lc_text);
	lineno = 0;
	if (helper_conf_finish(c, &lineno, err, sizeof(err)) == -1 ||
	    acl_conf_finish(c, &lineno, err, sizeof(err)) == -1)
		return conf_error_at(p, lineno, NULL, "%s", err);
	if (TAILQ_EMPTY(&c->c_access_logs) && p->cp_log_none == 0) {
		if ((alc = calloc(1, sizeof(*alc))) == NULL)
			return conf_error_at(p, 0, NULL, "out of memory");
		if ((alc->alc_path = strdup(CONF_LOG_DEFAULT)) == NULL ||
		    (alc->alc_name = strdup(CONF_LOG_DEFAULT)) == NULL) {
			conf_access_log_free(alc);
			return conf_error_at(p, 0, NULL, "out of memory");
		}
		alc->alc_buffer_size = CONF_BUFFER_DEFAULT;
		TAILQ_INSERT_TAIL(&c->c_access_logs, alc, alc_entry);
		if ((alc->alc_format =
		    logformat_builtin(CONF_FORMAT_DEFAULT)) == NULL)
			return conf_error_at(p, 0, NULL, "built-in logformat "
			    "'%s' is missing", CONF_FORMAT_DEFAULT);
	}
	return 0;
}

static void
conf_free(struct conf *c)
{
	struct listen_conf	*lc;
	struct logformat_conf	*lfc;
	struct access_log_conf	*alc;

	if (c == NULL)
		return;
	while ((lc = TAILQ_FIRST(&c->c_listens)) != NULL) {
		TAILQ_REMOVE(&c->c_listens, lc, lc_entry);
		free(lc->lc_text);
		free(lc);
	}
	while ((alc = TAILQ_FIRST(&c->c_access_logs)) != NULL) {
		TAILQ_REMOVE(&c->c_access_logs, alc, alc_entry);
		conf_access_log_free(alc);
	}
	while ((lfc = TAILQ_FIRST(&c->c_logformats)) != NULL) {
		TAILQ_REMOVE(&c->c_logformats, lfc, lfc_entry);
		logformat_free(lfc->lfc_format);
		free(lfc->lfc_name);
		free(lfc->lfc_template);
		free(lfc);
	}
	acl_conf_free(c);
	helper_conf_free(c);
	if (c->c_metrics != NULL) {
		free(c->c_metrics->lc_text);
		free(c->c_metrics);
	}
	free(c->c_dns_nameservers);
	free(c->c_hosts_file);
	free(c->c_effective_user);
	free(c->c_visible_hostname);
	free(c->c_path);
	free(c);
}

static struct conf *
conf_new(const char *name)
{
	struct conf	*c;
	char		 host[HOST_NAME_MAX_LEN + 1];

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	/* Squid's default visible_hostname: what gethostname() says */
	if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
		snprintf(host, sizeof(host), "%s", CONF_HOSTNAME_DEFAULT);
	host[sizeof(host) - 1] = '\0';
	if ((c->c_path = strdup(name)) == NULL ||
	    (c->c_visible_hostname = strdup(host)) == NULL) {
		free(c->c_path);
		free(c);
		return NULL;
	}
	c->c_refcnt = 1;
	TAILQ_INIT(&c->c_listens);
	TAILQ_INIT(&c->c_logformats);
	TAILQ_INIT(&c->c_access_logs);
	c->c_connect_timeout = 60;
	c->c_read_timeout = 15 * 60;
	c->c_request_header_timeout = 30;
	c->c_half_closed_timeout = 2 * 60;
	c->c_shutdown_lifetime = 30;	/* Squid's default */
	c->c_request_header_max_size = REQUEST_HEADER_MAX;
	c->c_client_lifetime = 86400;
	/* Squid's defaults */
	c->c_client_idle_pconn_timeout = 2 * 60;
	c->c_server_idle_pconn_timeout = 60;
	c->c_strip_query_terms = 1;
	/* peek.c: read each tunnel's first bytes beside the relay */
	c->c_tls_peek = 1;
	c->c_tls_peek_timeout = 10;
	c->c_workers = 1;
	/* relay.c: bulk by splice(2); see connectd.conf(5) for the choice */
	c->c_relay_splice = 1;
	c->c_relay_splice_min = CONF_SPLICE_MIN;
	c->c_relay_splice_pipes = CONF_SPLICE_PIPES;
	return c;
}

int
conf_load_buffer(const char *name, const char *buf, size_t len,
    struct conf **confp, char *err, size_t errlen)
{
	struct conf_parse	 p;
	char			*line = NULL, *words = NULL, **argv = NULL;
	const char		*s, *eol, *nul;
	size_t			 linelen, cap = 0, argcap = 0, i, n;
	int			 rv = -1;

	*confp = NULL;
	memset(&p, 0, sizeof(p));
	p.cp_file = name;
	p.cp_err = err;
	p.cp_errlen = errlen;
	if ((p.cp_conf = conf_new(name)) == NULL ||
	    (p.cp_seen = calloc(CONF_NDIRECTIVES, sizeof(*p.cp_seen))) ==
	    NULL) {
		conf_error(&p, "out of memory");
		goto fail;
	}

	for (s = buf; s < buf + len; s = eol + 1) {
		p.cp_lineno++;
		p.cp_line = NULL;
		if ((eol = memchr(s, '\n', buf + len - s)) == NULL)
			eol = buf + len - 1;	/* no newline at the end */
		linelen = eol - s + (*eol != '\n');
		if (linelen + 1 > cap) {
			free(line);
			free(words);
			words = NULL;
			cap = linelen + 1;
			if ((line = malloc(cap)) == NULL ||
			    (words = malloc(cap)) == NULL) {
				conf_error(&p, "out of memory");
				goto fail;
			}
		}
		nul = memchr(s, '\0', linelen);
		n = nul != NULL ? (size_t)(nul - s) : linelen;
		while (n > 0 && strchr(CONF_WS, s[n - 1]) != NULL)
			n--;
		i = 0;
		while (i < n && strchr(CONF_WS, s[i]) != NULL)
			i++;
		memcpy(line, s + i, n - i);
		line[n - i] = '\0';
		p.cp_line = line;
		if (nul != NULL) {
			conf_error(&p, "NUL byte in line");
			goto fail;
		}
		if (line[0] == '\0' || line[0] == '#')
			continue;
		memcpy(words, line, n - i + 1);
		if (conf_line(&p, words, &argv, &argcap) == -1)
			goto fail;
	}
	p.cp_lineno = 0;
	p.cp_line = NULL;
	if (conf_finish(&p) == -1)
		goto fail;
	*confp = p.cp_conf;
	p.cp_conf = NULL;
	rv = 0;
 fail:
	for (i = 0; i < p.cp_npending; i++) {
		free(p.cp_pending[i].pf_name);
		free(p.cp_pending[i].pf_line);
	}
	free(p.cp_pending);
	free(p.cp_seen);
	free(argv);
	free(words);
	free(line);
	conf_free(p.cp_conf);
	return rv;
}

int
conf_load(const char *path, struct conf **confp, char *err, size_t errlen)
{
	struct buf	 b = BUF_INITIALIZER(CONF_FILE_MAX);
	struct stat	 st;
	size_t		 avail;
	ssize_t		 n;
	char		*p;
	int		 fd, rv;

	*confp = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		goto fail;
	if (fstat(fd, &st) == -1)
		goto fail;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		goto fail;
	}
	for (;;) {
		if ((p = buf_space(&b, 8192, &avail)) == NULL) {
			if (b.b_len == CONF_FILE_MAX)
				errno = EFBIG;
			goto fail;
		}
		if ((n = read(fd, p, avail)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		buf_commit(&b, (size_t)n);
	}
	close(fd);
	rv = conf_load_buffer(path, b.b_data != NULL ? b.b_data : "", b.b_len,
	    confp, err, errlen);
	buf_free(&b);
	return rv;
 fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	buf_free(&b);
	return -1;
}

/*
 * The count is atomic: each worker's connections take and drop
 * references in its own thread.  What the last one does is worker.c's
 * call (worker_conf_dead()): only the main thread closes log outputs.
 */
struct conf *
conf_ref(struct conf *c)
{
	__atomic_add_fetch(&c->c_refcnt, 1, __ATOMIC_RELAXED);
	return c;
}

void
conf_unref(struct conf *c)
{
	if (c == NULL || __atomic_sub_fetch(&c->c_refcnt, 1,
	    __ATOMIC_ACQ_REL) > 0)
		return;
	if (worker_conf_dead(c) == 0)
		return;
	conf_destroy(c);
}

void
conf_destroy(struct conf *c)
{
	accesslog_close(c);
	conf_free(c);
}

/* ------------------------------------------------------------------ dump */

static void
conf_fmt_time(char *buf, size_t len, double v)
{
	static const struct conf_unit	 units[] = {
		{ "day", 86400000 }, { "hour", 3600000 }, { "minute", 60000 },
		{ "second", 1000 }, { "millisecond", 1 } };
	long long			 ms, q;
	size_t				 i;

	ms = llround(v * 1000);
	if (fabs(v * 1000 - ms) > 1e-6) {
		snprintf(buf, len, "%.17g seconds", v);
		return;
	}
	if (ms == 0) {
		snprintf(buf, len, "0 seconds");
		return;
	}
	for (i = 0; i < nitems(units); i++) {
		if (ms % (long long)units[i].cu_scale != 0)
			continue;
		q = ms / (long long)units[i].cu_scale;
		snprintf(buf, len, "%lld %s%s", q, units[i].cu_name,
		    q == 1 ? "" : "s");
		return;
	}
}

/* sep is " " for a directive and "" for an option like buffer-size=4MB */
static void
conf_fmt_size(char *buf, size_t len, size_t v, const char *sep)
{
	size_t	 i;

	for (i = nitems(conf_size_units) - 1; i > 0; i--)
		if (v != 0 && v % (size_t)conf_size_units[i].cu_scale == 0)
			break;
	snprintf(buf, len, "%zu%s%s", v / (size_t)conf_size_units[i].cu_scale,
	    sep, conf_size_units[i].cu_name);
}

static void
conf_dump_http_port(const struct conf *c, const struct conf_directive *d,
    FILE *fp)
{
	struct listen_conf	*lc;

	TAILQ_FOREACH(lc, &c->c_listens, lc_entry)
		fprintf(fp, "%s %s\n", d->cd_name, lc->lc_text);
}

static void
conf_dump_metrics_port(const struct conf *c, const struct conf_directive *d,
    FILE *fp)
{
	fprintf(fp, "%s %s\n", d->cd_name, c->c_metrics != NULL ?
	    c->c_metrics->lc_text : "none");
}

static void
conf_dump_time(const struct conf *c, const struct conf_directive *d,
    FILE *fp)
{
	char	 buf[64];

	conf_fmt_time(buf, sizeof(buf),
	    *(const double *)((const char *)c + d->cd_offset));
	fprintf(fp, "%s %s\n", d->cd_name, buf);
}

static void
conf_dump_size(const struct conf *c, const struct conf_directive *d,
    FILE *fp)
{
	char	 buf[64];

	conf_fmt_size(buf, sizeof(buf),
	    *(const size_t *)((const char *)c + d->cd_offset), " ");
	fprintf(fp, "%s %s\n", d->cd_name, buf);
}

static void
conf_dump_logformat(const struct conf *c, const struct conf_directive *d,
    FILE *fp)
{
	struct logformat_conf	*lfc;

	TAILQ_FOREACH(lfc, &c->c_logformats, lfc_entry)
		fprintf(fp, "%s %s %s\n", d->cd_name, lfc->lfc_name,
		    lfc->lfc_template);
}

static void
conf_dump_access_log(const struct conf *c, const struct conf_directive *d,
    FILE *fp)
{
	struct access_log_conf	*alc;
	const char		*name;
	char			 buf[64];

	if (TAILQ_EMPTY(&c->c_access_logs))
		fprintf(fp, "%s none\n", d->cd_name);
	TAILQ_FOREACH(alc, &c->c_access_logs, alc_entry) {
		conf_fmt_size(buf, sizeof(buf), alc->alc_buffer_size, "");
		name = alc->alc_format != NULL ?
		    logformat_name(alc->alc_format) : NULL;
		fprintf(fp, "%s %s%s logformat=%s buffer-size=%s", d->cd_name,
		    alc->alc_kind == ALK_STDIO ? "stdio:" : "", alc->alc_name,
		    name != NULL ? name : "?", buf);
		if (alc->alc_datagram_size > 0) {
			conf_fmt_size(buf, sizeof(buf), alc->alc_datagram_size,
			    "");
			fprintf(fp, " datagram-size=%s", buf);
		}
		if (alc->alc_kind == ALK_SYSLOG && alc->alc_host != NULL)
			fprintf(fp, " server=udp://%s%s%s:%s",
			    strchr(alc->alc_host, ':') != NULL ? "[" : "",
			    alc->alc_host,
			    strchr(alc->alc_host, ':') != NULL ? "]" : "",
			    alc->alc_port);
		else if (alc->alc_kind == ALK_SYSLOG && alc->alc_path != NULL)
			fprintf(fp, " server=unix:%s", alc->alc_path);
		fputc('\n', fp);
	}
}

void
conf_dump(const struct conf *c, FILE *fp)
{
	size_t	 i;

	fprintf(fp, "# effective configuration from %s\n", c->c_path);
	for (i = 0; i < CONF_NDIRECTIVES; i++)
		if (conf_directives[i].cd_dump != NULL)
			conf_directives[i].cd_dump(c, &conf_directives[i], fp);
	helper_conf_dump(c, fp);
	acl_conf_dump(c, fp);
}
