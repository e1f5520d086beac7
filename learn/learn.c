/* learn.c: connectd-learn, an egress.connectd.io/allow list per workload from connectd's json access-log lines */
/*
 * Contract (connectd-learn(1); issue 15's egress-policy spec, "Learning
 * command"):
 *
 * - Input: connectd json lines (connectd.conf(5), conf/bigquery-schema.json),
 *   from the files named, or standard input ("-" or none).  A line is used
 *   when it is a JSON object with "record":"final", a "pod" object with
 *   string namespace and name (podmeta(8)'s {"ip":..,"pod":null} is no pod,
 *   its {..,"ambiguous":true} a hostNetwork address), a parseable "ts", a
 *   string "host" and an integer "port" 1-65535.  Anything else is counted
 *   under one reason and skipped; no input makes the program crash, read
 *   past a buffer or grow without bound (fuzz/fuzz_learn.c).
 * - Bounds: a line is at most --max-line bytes (longer ones are skipped
 *   whole, reason too_long); at most --max-entries distinct (workload,
 *   host, port) entries are kept (a workload exists only with an entry, so
 *   workloads are bounded too); a line whose entry would be new past the
 *   cap is counted as over_cap, globally and on its workload when that one
 *   exists.  Memory: about 120 bytes plus the host per entry, and the
 *   names per workload, plus one line.
 * - Workload: (namespace, kind, name) from the pod's owner; a ReplicaSet
 *   named "<prefix>-<pod-template-hash label>" is the Deployment <prefix>;
 *   no owner is kind Pod, the pod's name.
 * - Destination: the host lowercased, without a trailing dot, a DNS name
 *   (labels of [a-z0-9_-], 1-63 bytes, at most 253 in all) or an IP
 *   literal, written as a /32 or /128 CIDR (IPv6 bracketed with the port);
 *   a TLS hello's SNI that names another host is a destination too.
 * - Output: stdout (text, or one JSON object per workload with --json),
 *   the summary on stderr.  Exit 0; 1 when an input could not be read (the
 *   rest is still read and reported); 2 on a usage error.
 */
#include <sys/types.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "hash.h"

#define LEARN_MAX_ENTRIES	100000		/* --max-entries default */
#define LEARN_MAX_LINE		(1024 * 1024)	/* --max-line default */
#define LEARN_NAME_MAX		253		/* a DNS name, a k8s name */
#define LEARN_ALLOW_MAX		4096		/* the spec's entries per annotation */
#define ANNOTATION		"egress.connectd.io/allow"

#define VIA_HOST	0x1
#define VIA_SNI		0x2

/* The reasons a line is skipped, in the order the summary prints them. */
enum skip {
	SK_BLANK, SK_TOO_LONG, SK_NOT_JSON, SK_NOT_OBJECT, SK_INTERIM,
	SK_NOT_FINAL, SK_NO_POD, SK_HOST_NETWORK, SK_BAD_POD, SK_BAD_TS,
	SK_NO_DEST,
	SK_BAD_HOST, SK_N
};
static const char *skip_names[SK_N] = {
	"blank", "too_long", "not_json", "not_object", "interim",
	"not_final", "no_pod", "host_network", "bad_pod", "bad_ts",
	"no_destination",
	"bad_host"
};

struct workload;

/* One (workload, host, port): the counts of the lines that went there. */
struct dest {
	struct hnode	 d_hnode;	/* in L.dh: first, for the casts */
	struct dest	*d_wnext;	/* its workload's list */
	struct workload	*d_w;
	uint64_t	 d_count, d_denied, d_would_deny;
	int64_t		 d_first, d_last;	/* ts, ms since the epoch */
	unsigned	 d_port;
	unsigned	 d_via;		/* VIA_HOST | VIA_SNI */
	int		 d_ip;		/* host is a CIDR: 4 or 6, else 0 */
	char		 d_host[];	/* normalized: name or CIDR */
};

struct workload {
	struct hnode	 w_hnode;	/* in L.wh: first, for the casts */
	struct workload	*w_next;	/* creation order */
	struct dest	*w_dests;
	size_t		 w_ndests;
	uint64_t	 w_lines, w_denied, w_would_deny, w_over_cap;
	int64_t		 w_first, w_last;
	char		*w_ns, *w_kind, *w_name;
};

static struct {
	/* options */
	int		 json, include_denied;
	unsigned	 collapse;
	size_t		 max_entries, max_line;
	int64_t		 since, until;		/* INT64_MIN/MAX: none */
	const char	*ns;
	/* state */
	struct htab	 dh;		/* dests, by (workload, host, port) */
	struct htab	 wh;		/* workloads, by (ns, kind, name) */
	struct workload	*wfirst, **wlast;
	/* counts */
	uint64_t	 read, used, filtered, over_cap, bad_sni;
	uint64_t	 skipped[SK_N];
	int		 read_error;
} L;

static __attribute__((noreturn, unused)) void
usage(int status)
{
	FILE	*f = status ? stderr : stdout;

	fprintf(f,
	    "usage: connectd-learn [-h] [--json] [--collapse n] [--since time] [--until time]\n"
	    "                      [--namespace ns] [--include-denied] [--max-entries n]\n"
	    "                      [--max-line bytes] [file ...]\n");
	exit(status);
}

static __attribute__((noreturn, unused, format(printf, 1, 2))) void
die_usage(const char *fmt, ...)
{
	va_list	 ap;

	fputs("connectd-learn: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(2);
}

static __attribute__((noreturn)) void
die_nomem(void)
{
	fputs("connectd-learn: out of memory\n", stderr);
	exit(1);
}

static void *
xmalloc(size_t n)
{
	void	*p = malloc(n);

	if (p == NULL)
		die_nomem();
	return p;
}

static void *
xcalloc(size_t n, size_t sz)
{
	void	*p = calloc(n, sz);

	if (p == NULL)
		die_nomem();
	return p;
}

static char *
xstrdup(const char *s)
{
	char	*p = strdup(s);

	if (p == NULL)
		die_nomem();
	return p;
}

/* ------------------------------------------------------------- time */

static int
digits(const char *s, int n, int *out)
{
	int	 i, v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/*
 * RFC 3339 (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM); T may be t or a
 * space, Z may be z) to milliseconds since the epoch.  -1 on anything else.
 */
static int
parse_rfc3339(const char *s, int64_t *ms)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	struct tm	 tm;
	int		 y, mo, d, hh, mi, ss, frac = 0, oh, om, sign, n;
	time_t		 t;

	if (strlen(s) < 20 ||
	    digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
	    s[7] != '-' || digits(s + 8, 2, &d) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &hh) || s[13] != ':' || digits(s + 14, 2, &mi) ||
	    s[16] != ':' || digits(s + 17, 2, &ss))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || hh > 23 ||
	    mi > 59 || ss > 60)
		return -1;
	s += 19;
	if (*s == '.') {
		s++;
		for (n = 0; *s >= '0' && *s <= '9'; s++, n++)
			if (n < 3)
				frac = frac * 10 + (*s - '0');
		if (n == 0)
			return -1;
		for (; n < 3; n++)
			frac *= 10;
	}
	if (*s == 'Z' || *s == 'z') {
		oh = om = 0;
		sign = 1;
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s == '-' ? -1 : 1;
		if (digits(s + 1, 2, &oh) || s[3] != ':' ||
		    digits(s + 4, 2, &om) || oh > 23 || om > 59)
			return -1;
		s += 6;
	} else
		return -1;
	if (*s != '\0')
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = hh;
	tm.tm_min = mi;
	tm.tm_sec = ss > 59 ? 59 : ss;
	t = timegm(&tm);
	*ms = ((int64_t)t - sign * (int64_t)(oh * 3600 + om * 60)) * 1000 + frac;
	return 0;
}

static const char *
fmt_ts(int64_t ms, char *buf, size_t len)
{
	struct tm	 tm;
	time_t		 t;
	int64_t		 sec = ms / 1000, frac = ms % 1000;

	if (frac < 0) {
		frac += 1000;
		sec--;
	}
	t = (time_t)sec;
	if (gmtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "?");
		return buf;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)frac);
	return buf;
}

/* ------------------------------------------------------------- hosts */

/*
 * A DNS name as the spec's grammar takes it, lowercase already: labels of
 * [a-z0-9_-], 1-63 bytes, neither starting nor ending with '-' (RFC 1123
 * 2.1; '_' is let in, as in _service names), at most 253 bytes in all,
 * not all digits and dots (an IPv4 literal that inet_pton refused, e.g.
 * 010.1.1.1).
 */
static int
valid_name(const char *s)
{
	size_t	 n = strlen(s), lab = 0, i;
	int	 alpha = 0;

	if (n == 0 || n > LEARN_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return 0;
			lab = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_'))
			return 0;
		if (c == '-' && lab == 0)
			return 0;
		if (!(c >= '0' && c <= '9'))
			alpha = 1;
		if (++lab > 63)
			return 0;
	}
	return lab > 0 && s[n - 1] != '-' && alpha;
}

/*
 * Normalize a host or SNI into out (at least INET6_ADDRSTRLEN + 5 and
 * LEARN_NAME_MAX + 1 bytes): an IP literal becomes its CIDR (*ip = 4 or
 * 6), a name is lowercased without one trailing dot (*ip = 0).  -1 when it
 * is neither.
 */
static int
norm_host(const char *in, size_t len, char *out, size_t outlen, int *ip)
{
	char		 tmp[LEARN_NAME_MAX + 2];
	unsigned char	 a[16];
	size_t		 i;

	if (len > 1 && in[0] == '[' && in[len - 1] == ']') {
		in++;
		len -= 2;
	}
	if (len == 0 || len > LEARN_NAME_MAX + 1 || memchr(in, '\0', len))
		return -1;
	for (i = 0; i < len; i++)
		tmp[i] = (char)tolower((unsigned char)in[i]);
	tmp[len] = '\0';
	if (inet_pton(AF_INET, tmp, a) == 1) {
		char	 p[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, a, p, sizeof(p));
		snprintf(out, outlen, "%s/32", p);
		*ip = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, a) == 1) {
		char	 p[INET6_ADDRSTRLEN];

		inet_ntop(AF_INET6, a, p, sizeof(p));
		snprintf(out, outlen, "%s/128", p);
		*ip = 6;
		return 0;
	}
	if (len > 1 && tmp[len - 1] == '.')
		tmp[--len] = '\0';
	if (!valid_name(tmp))
		return -1;
	memcpy(out, tmp, len + 1);
	*ip = 0;
	return 0;
}

/* The annotation entry: host:port, an IPv6 CIDR bracketed. */
static void
entry_text(const char *host, int ip, unsigned port, char *buf, size_t len)
{
	if (ip == 6)
		snprintf(buf, len, "[%s]:%u", host, port);
	else
		snprintf(buf, len, "%s:%u", host, port);
}

/* ------------------------------------------------------------- tables */

/* Keys for lib/hash.h's table: what a lookup compares a node with. */
struct wl_key {
	const char	*ns, *kind, *name;
};

struct dest_key {
	const struct workload	*w;
	const char		*host;
	unsigned		 port;
};

static uint64_t
wl_hash(const struct wl_key *k)
{
	return (hash_bytes(k->ns, strlen(k->ns)) * 31 +
	    hash_bytes(k->kind, strlen(k->kind))) * 31 +
	    hash_bytes(k->name, strlen(k->name));
}

static int
wl_match(const struct hnode *n, const void *key)
{
	const struct workload	*w = (const struct workload *)(const void *)n;
	const struct wl_key	*k = key;

	return strcmp(w->w_ns, k->ns) == 0 && strcmp(w->w_kind, k->kind) == 0 &&
	    strcmp(w->w_name, k->name) == 0;
}

static uint64_t
dest_hash(const struct dest_key *k)
{
	return hash_bytes(k->host, strlen(k->host)) ^
	    ((uint64_t)(uintptr_t)k->w * 0x9e3779b97f4a7c15ULL) ^ k->port;
}

static int
dest_match(const struct hnode *n, const void *key)
{
	const struct dest	*d = (const struct dest *)(const void *)n;
	const struct dest_key	*k = key;

	return d->d_w == k->w && d->d_port == k->port &&
	    strcmp(d->d_host, k->host) == 0;
}

/* The tables, made on first use (and again after learn_reset()). */
static void
tables_init(void)
{
	if (L.wh.ht_size == 0 && htab_init(&L.wh, 256) == -1)
		die_nomem();
	if (L.dh.ht_size == 0 && htab_init(&L.dh, 1024) == -1)
		die_nomem();
}

/* The workload, or NULL when it does not exist and create is 0. */
static struct workload *
workload_get(const char *ns, const char *kind, const char *name, int create)
{
	struct wl_key	 k = { ns, kind, name };
	struct workload	*w;
	uint64_t	 h = wl_hash(&k);

	tables_init();
	if ((w = (struct workload *)(void *)htab_find(&L.wh, h, wl_match,
	    &k)) != NULL || !create)
		return w;
	w = xcalloc(1, sizeof(*w));
	w->w_ns = xstrdup(ns);
	w->w_kind = xstrdup(kind);
	w->w_name = xstrdup(name);
	w->w_first = INT64_MAX;
	w->w_last = INT64_MIN;
	htab_insert(&L.wh, &w->w_hnode, h);
	*L.wlast = w;
	L.wlast = &w->w_next;
	return w;
}

/* The entry; a new one unless the cap is reached (then NULL). */
static struct dest *
dest_get(struct workload *w, const char *host, int ip, unsigned port)
{
	struct dest_key	 k = { w, host, port };
	struct dest	*d;
	uint64_t	 h = dest_hash(&k);
	size_t		 len = strlen(host);

	tables_init();
	if ((d = (struct dest *)(void *)htab_find(&L.dh, h, dest_match,
	    &k)) != NULL)
		return d;
	if (L.dh.ht_count >= L.max_entries)
		return NULL;
	d = xcalloc(1, sizeof(*d) + len + 1);
	memcpy(d->d_host, host, len + 1);
	d->d_w = w;
	d->d_port = port;
	d->d_ip = ip;
	d->d_first = INT64_MAX;
	d->d_last = INT64_MIN;
	d->d_wnext = w->w_dests;
	w->w_dests = d;
	w->w_ndests++;
	htab_insert(&L.dh, &d->d_hnode, h);
	return d;
}

/* ------------------------------------------------------------- one line */

static const char *
jstr(json_t *o, const char *key)
{
	json_t	*v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/*
 * A Kubernetes name as printed into a shell command and a kubectl argument:
 * [A-Za-z0-9._-], starting and ending with a letter or digit (so never an
 * option), at most 253 bytes.
 */
static int
valid_k8s(const char *s)
{
	size_t	 n = s ? strlen(s) : 0, i;

	if (n == 0 || n > LEARN_NAME_MAX || !isalnum((unsigned char)s[0]) ||
	    !isalnum((unsigned char)s[n - 1]))
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '-' && s[i] != '_')
			return 0;
	return 1;
}

/* A kind: letters and digits, starting with a letter (ReplicaSet). */
static int
valid_kind(const char *s)
{
	size_t	 n = s ? strlen(s) : 0, i;

	if (n == 0 || n > 63 || !isalpha((unsigned char)s[0]))
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]))
			return 0;
	return 1;
}

/*
 * The workload of a pod object: (namespace, kind, name) into the buffers
 * (each LEARN_NAME_MAX + 1).  -1 when the pod lacks what that takes.
 */
static int
pod_workload(json_t *pod, char *ns, char *kind, char *name)
{
	const char	*pns = jstr(pod, "namespace"), *pname = jstr(pod, "name");
	const char	*ok = NULL, *on = NULL, *hash = NULL;
	json_t		*owner = json_object_get(pod, "owner");
	json_t		*labels = json_object_get(pod, "labels");

	if (!valid_k8s(pns) || !valid_k8s(pname))
		return -1;
	strcpy(ns, pns);
	if (json_is_object(owner)) {
		ok = jstr(owner, "kind");
		on = jstr(owner, "name");
	}
	if (!valid_kind(ok) || !valid_k8s(on)) {
		/* no owner (or one that cannot be named): the pod itself */
		strcpy(kind, "Pod");
		strcpy(name, pname);
		return 0;
	}
	if (json_is_object(labels))
		hash = jstr(labels, "pod-template-hash");
	if (strcmp(ok, "ReplicaSet") == 0 && hash != NULL && *hash != '\0') {
		size_t	 on_len = strlen(on), h_len = strlen(hash);

		if (on_len > h_len + 1 && on[on_len - h_len - 1] == '-' &&
		    strcmp(on + on_len - h_len, hash) == 0) {
			strcpy(kind, "Deployment");
			memcpy(name, on, on_len - h_len - 1);
			name[on_len - h_len - 1] = '\0';
			return 0;
		}
	}
	strcpy(kind, ok);
	strcpy(name, on);
	return 0;
}

static void
count(struct dest *d, unsigned via, int64_t ts, int denied, int would_deny)
{
	d->d_count++;
	d->d_denied += denied;
	d->d_would_deny += would_deny;
	d->d_via |= via;
	if (ts < d->d_first)
		d->d_first = ts;
	if (ts > d->d_last)
		d->d_last = ts;
}

static void
line(const char *buf, size_t len)
{
	json_t		*o, *pod, *v, *tls, *pol;
	json_error_t	 err;
	const char	*rec, *ts, *host, *cl, *verdict, *sni;
	char		 ns[LEARN_NAME_MAX + 1], kind[LEARN_NAME_MAX + 1];
	char		 name[LEARN_NAME_MAX + 1];
	char		 h[LEARN_NAME_MAX + INET6_ADDRSTRLEN + 8];
	char		 s[LEARN_NAME_MAX + INET6_ADDRSTRLEN + 8];
	struct workload	*w;
	struct dest	*dh, *ds = NULL;
	int64_t		 t, port;
	int		 ip, sip, denied, would_deny, want_sni = 0;
	size_t		 i;

	for (i = 0; i < len; i++)
		if (!isspace((unsigned char)buf[i]))
			break;
	if (i == len) {
		L.skipped[SK_BLANK]++;
		return;
	}
	o = json_loadb(buf, len, JSON_DECODE_ANY, &err);
	if (o == NULL) {
		L.skipped[SK_NOT_JSON]++;
		return;
	}
	if (!json_is_object(o)) {
		L.skipped[SK_NOT_OBJECT]++;
		goto out;
	}
	rec = jstr(o, "record");
	if (rec != NULL && strcmp(rec, "interim") == 0) {
		L.skipped[SK_INTERIM]++;
		goto out;
	}
	if (rec == NULL || strcmp(rec, "final") != 0) {
		L.skipped[SK_NOT_FINAL]++;
		goto out;
	}
	pod = json_object_get(o, "pod");
	if (pod == NULL || json_is_null(pod) || (json_is_object(pod) &&
	    json_object_get(pod, "name") == NULL &&
	    json_is_null(json_object_get(pod, "pod")))) {
		/* podmeta --unknown ok writes {"ip":...,"pod":null} */
		L.skipped[SK_NO_POD]++;
		goto out;
	}
	if (json_is_object(pod) && json_object_get(pod, "name") == NULL &&
	    json_is_true(json_object_get(pod, "ambiguous"))) {
		/* a hostNetwork address: the node, no pod, no workload */
		L.skipped[SK_HOST_NETWORK]++;
		goto out;
	}
	if (!json_is_object(pod) || pod_workload(pod, ns, kind, name) == -1) {
		L.skipped[SK_BAD_POD]++;
		goto out;
	}
	ts = jstr(o, "ts");
	if (ts == NULL || parse_rfc3339(ts, &t) == -1) {
		L.skipped[SK_BAD_TS]++;
		goto out;
	}
	host = jstr(o, "host");
	v = json_object_get(o, "port");
	if (host == NULL || !json_is_integer(v) ||
	    (port = json_integer_value(v)) < 1 || port > 65535) {
		L.skipped[SK_NO_DEST]++;
		goto out;
	}
	if (norm_host(host, json_string_length(json_object_get(o, "host")),
	    h, sizeof(h), &ip) == -1) {
		L.skipped[SK_BAD_HOST]++;
		goto out;
	}
	/* the filters, once the line is known to be a good one */
	if (t < L.since || t >= L.until ||
	    (L.ns != NULL && strcmp(L.ns, ns) != 0)) {
		L.filtered++;
		goto out;
	}
	tls = json_object_get(o, "tls");
	if (json_is_object(tls) && (sni = jstr(tls, "sni")) != NULL) {
		json_t *sv = json_object_get(tls, "sni");

		if (norm_host(sni, json_string_length(sv), s, sizeof(s),
		    &sip) == -1)
			L.bad_sni++;
		else if (strcmp(s, h) != 0)
			want_sni = 1;
	}
	v = json_object_get(o, "status");
	cl = jstr(o, "close");
	denied = (json_is_integer(v) && json_integer_value(v) == 403) ||
	    (cl != NULL && strcmp(cl, "denied") == 0);
	pol = json_object_get(o, "policy");
	verdict = json_is_object(pol) ? jstr(pol, "verdict") : NULL;
	would_deny = verdict != NULL && strcmp(verdict, "would_deny") == 0;

	w = workload_get(ns, kind, name, L.dh.ht_count < L.max_entries);
	if (w == NULL) {
		L.over_cap++;
		goto out;
	}
	dh = dest_get(w, h, ip, (unsigned)port);
	if (want_sni)
		ds = dest_get(w, s, sip, (unsigned)port);
	if (dh == NULL || (want_sni && ds == NULL)) {
		L.over_cap++;
		w->w_over_cap++;
	}
	if (dh == NULL && ds == NULL)
		goto out;
	if (dh != NULL)
		count(dh, VIA_HOST, t, denied, would_deny);
	if (ds != NULL)
		count(ds, VIA_SNI, t, denied, would_deny);
	w->w_lines++;
	w->w_denied += denied;
	w->w_would_deny += would_deny;
	if (t < w->w_first)
		w->w_first = t;
	if (t > w->w_last)
		w->w_last = t;
	L.used++;
out:
	json_decref(o);
}

/*
 * Every line of f, each at most L.max_line bytes (without the newline and
 * a trailing CR); a longer one is skipped whole.  A last line without a
 * newline counts.
 */
static void
read_file(FILE *f, const char *name)
{
	char	*lbuf = xmalloc(L.max_line + 1), chunk[65536];
	size_t	 llen = 0, n, i, start;
	int	 over = 0, any = 0;

	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		for (start = 0, i = 0; i < n; i++) {
			if (chunk[i] != '\n')
				continue;
			if (!over && llen + (i - start) <= L.max_line + 1) {
				memcpy(lbuf + llen, chunk + start, i - start);
				llen += i - start;
			} else
				over = 1;
			L.read++;
			if (!over && llen > 0 && lbuf[llen - 1] == '\r')
				llen--;
			if (over || llen > L.max_line)
				L.skipped[SK_TOO_LONG]++;
			else
				line(lbuf, llen);
			llen = 0;
			over = 0;
			any = 0;
			start = i + 1;
		}
		if (start < n) {
			any = 1;
			if (!over && llen + (n - start) <= L.max_line + 1) {
				memcpy(lbuf + llen, chunk + start, n - start);
				llen += n - start;
			} else
				over = 1;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "connectd-learn: %s: %s\n", name, strerror(errno));
		L.read_error = 1;
	} else if (any) {
		L.read++;
		if (!over && llen > 0 && lbuf[llen - 1] == '\r')
			llen--;
		if (over || llen > L.max_line)
			L.skipped[SK_TOO_LONG]++;
		else
			line(lbuf, llen);
	}
	free(lbuf);
}

/* ------------------------------------------------------------- output */

struct sugg {
	char		*text;		/* the entry */
	const char	*host;		/* into dest's host (names only) */
	const char	*parent;	/* after the first label, or NULL */
	unsigned	 port;
};

static int
sugg_cmp_parent(const void *a, const void *b)
{
	const struct sugg	*x = a, *y = b;
	int			 c;

	if (x->parent == NULL || y->parent == NULL)
		return (x->parent == NULL) - (y->parent == NULL);
	if ((c = strcmp(x->parent, y->parent)) != 0)
		return c;
	return (x->port > y->port) - (x->port < y->port);
}

/* sugg_cmp_parent, then the host: a group's names in order */
static int
sugg_cmp_host(const void *a, const void *b)
{
	const struct sugg	*x = a, *y = b;
	int			 c;

	if ((c = sugg_cmp_parent(a, b)) != 0 || x->host == NULL)
		return c;
	return strcmp(x->host, y->host);
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The suggested entries of a list of destinations (sorted, unique; the
 * caller frees each and the array): names collapsed under --collapse,
 * destinations whose every line was denied left out unless
 * --include-denied.
 */
static char **
suggest(struct dest **ds, size_t nd, size_t *nout)
{
	struct sugg	*sg = xcalloc(nd + 1, sizeof(*sg));
	char		**out = xcalloc(nd + 1, sizeof(*out)), buf[600];
	size_t		 n = 0, i, j, k, no = 0;

	for (i = 0; i < nd; i++) {
		struct dest *d = ds[i];
		const char *dot;

		if (!L.include_denied && d->d_denied >= d->d_count)
			continue;
		entry_text(d->d_host, d->d_ip, d->d_port, buf, sizeof(buf));
		sg[n].text = xstrdup(buf);
		sg[n].port = d->d_port;
		if (d->d_ip == 0 && (dot = strchr(d->d_host, '.')) != NULL &&
		    strchr(dot + 1, '.') != NULL) {
			sg[n].host = d->d_host;
			sg[n].parent = dot + 1;
		}
		n++;
	}
	if (L.collapse > 0) {
		qsort(sg, n, sizeof(*sg), sugg_cmp_host);
		for (i = 0; i < n; i = j) {
			size_t	 distinct = 1;

			for (j = i + 1; j < n && sugg_cmp_parent(&sg[i], &sg[j]) == 0; j++)
				if (sg[i].parent != NULL &&
				    strcmp(sg[j].host, sg[j - 1].host) != 0)
					distinct++;
			if (sg[i].parent == NULL)
				continue;
			/* a name twice: two workloads' (the namespace's union) */
			if (distinct < L.collapse)
				continue;
			snprintf(buf, sizeof(buf), "*.%s:%u", sg[i].parent, sg[i].port);
			for (k = i; k < j; k++) {
				free(sg[k].text);
				sg[k].text = k == i ? xstrdup(buf) : NULL;
			}
		}
	}
	for (i = 0; i < n; i++)
		if (sg[i].text != NULL)
			out[no++] = sg[i].text;
	qsort(out, no, sizeof(*out), str_cmp);
	for (i = j = 0; i < no; i++) {
		if (j > 0 && strcmp(out[j - 1], out[i]) == 0) {
			free(out[i]);
			continue;
		}
		out[j++] = out[i];
	}
	free(sg);
	*nout = j;
	return out;
}

static char *
join(char **e, size_t n)
{
	size_t	 len = 1, i;
	char	*s, *p;

	for (i = 0; i < n; i++)
		len += strlen(e[i]) + 1;
	p = s = xmalloc(len);
	*p = '\0';
	for (i = 0; i < n; i++) {
		size_t l = strlen(e[i]);

		if (i > 0)
			*p++ = ',';
		memcpy(p, e[i], l);
		p += l;
	}
	*p = '\0';
	return s;
}

static int
dest_cmp(const void *a, const void *b)
{
	const struct dest	*x = *(const struct dest *const *)a;
	const struct dest	*y = *(const struct dest *const *)b;
	int			 c;

	if ((c = strcmp(x->d_host, y->d_host)) != 0)
		return c;
	return (x->d_port > y->d_port) - (x->d_port < y->d_port);
}

static int
wl_cmp(const void *a, const void *b)
{
	const struct workload	*x = *(const struct workload *const *)a;
	const struct workload	*y = *(const struct workload *const *)b;
	int			 c;

	if ((c = strcmp(x->w_ns, y->w_ns)) != 0)
		return c;
	if ((c = strcmp(x->w_kind, y->w_kind)) != 0)
		return c;
	return strcmp(x->w_name, y->w_name);
}

static const char *
via_text(unsigned via)
{
	return via == (VIA_HOST | VIA_SNI) ? "host+sni" :
	    via == VIA_SNI ? "sni" : "host";
}

static void
lower(const char *in, char *out, size_t len)
{
	size_t	 i;

	for (i = 0; in[i] != '\0' && i + 1 < len; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[i] = '\0';
}

/*
 * The command that applies value to workload w, into a new string: a
 * patch of the pod template for the controllers that have one that can
 * change, kubectl annotate for a bare pod, a comment for the rest.
 */
static char *
command(struct workload *w, const char *value)
{
	char	 res[LEARN_NAME_MAX + 1], *s;
	int	 r;

	lower(w->w_kind, res, sizeof(res));
	if (strcmp(w->w_kind, "Deployment") == 0 ||
	    strcmp(w->w_kind, "StatefulSet") == 0 ||
	    strcmp(w->w_kind, "DaemonSet") == 0 ||
	    strcmp(w->w_kind, "ReplicaSet") == 0)
		r = asprintf(&s, "kubectl patch -n %s %s/%s --type merge -p "
		    "'{\"spec\":{\"template\":{\"metadata\":{\"annotations\":"
		    "{\"" ANNOTATION "\":\"%s\"}}}}}'",
		    w->w_ns, res, w->w_name, value);
	else if (strcmp(w->w_kind, "Pod") == 0)
		r = asprintf(&s, "kubectl annotate --overwrite -n %s pod/%s "
		    ANNOTATION "='%s'", w->w_ns, w->w_name, value);
	else
		r = asprintf(&s, "# %s/%s: set " ANNOTATION "='%s' in the pod "
		    "template of its controller, or on namespace %s",
		    w->w_kind, w->w_name, value, w->w_ns);
	if (r == -1)
		die_nomem();
	return s;
}

static json_t *
jts(int64_t ms)
{
	char	 b[80];

	return json_string(fmt_ts(ms, b, sizeof(b)));
}

static void
print_json(struct workload *w, struct dest **ds, char **e, size_t ne,
    const char *value, const char *cmd)
{
	json_t	*o, *arr, *sa, *d;
	char	 buf[600], *s;
	size_t	 i;

	arr = json_array();
	for (i = 0; i < w->w_ndests; i++) {
		entry_text(ds[i]->d_host, ds[i]->d_ip, ds[i]->d_port, buf, sizeof(buf));
		d = json_pack("{s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:o, s:o}",
		    "entry", buf, "host", ds[i]->d_host,
		    "port", (json_int_t)ds[i]->d_port,
		    "via", via_text(ds[i]->d_via),
		    "count", (json_int_t)ds[i]->d_count,
		    "denied", (json_int_t)ds[i]->d_denied,
		    "would_deny", (json_int_t)ds[i]->d_would_deny,
		    "first", jts(ds[i]->d_first), "last", jts(ds[i]->d_last));
		if (d == NULL || json_array_append_new(arr, d) == -1)
			die_nomem();
	}
	sa = json_array();
	for (i = 0; i < ne; i++)
		json_array_append_new(sa, json_string(e[i]));
	o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, "
	    "s:s, s:b, s:s}",
	    "namespace", w->w_ns, "kind", w->w_kind, "name", w->w_name,
	    "lines", (json_int_t)w->w_lines,
	    "denied", (json_int_t)w->w_denied,
	    "would_deny", (json_int_t)w->w_would_deny,
	    "over_cap", (json_int_t)w->w_over_cap,
	    "first", jts(w->w_first), "last", jts(w->w_last),
	    "destinations", arr, "suggested", sa,
	    "annotation", value, "too_many", ne > LEARN_ALLOW_MAX,
	    "command", cmd);
	if (o == NULL)
		die_nomem();
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (s == NULL)
		die_nomem();
	puts(s);
	free(s);
	json_decref(o);
}

static void
print_text(struct workload *w, struct dest **ds, size_t ne, const char *value,
    const char *cmd)
{
	char	 buf[600], f[80], l[80];
	size_t	 i;

	printf("%s/%s/%s: %" PRIu64 " lines, %" PRIu64 " denied, %" PRIu64
	    " would_deny, %s .. %s\n", w->w_ns, w->w_kind, w->w_name,
	    w->w_lines, w->w_denied, w->w_would_deny,
	    fmt_ts(w->w_first, f, sizeof(f)), fmt_ts(w->w_last, l, sizeof(l)));
	if (w->w_over_cap > 0)
		printf("  (%" PRIu64 " lines over the --max-entries cap not "
		    "counted)\n", w->w_over_cap);
	printf("  %-40s %-8s %8s %8s %10s  %-24s %s\n", "DESTINATION", "VIA",
	    "COUNT", "DENIED", "WOULD_DENY", "FIRST", "LAST");
	for (i = 0; i < w->w_ndests; i++) {
		entry_text(ds[i]->d_host, ds[i]->d_ip, ds[i]->d_port, buf, sizeof(buf));
		printf("  %-40s %-8s %8" PRIu64 " %8" PRIu64 " %10" PRIu64
		    "  %-24s %s\n", buf, via_text(ds[i]->d_via),
		    ds[i]->d_count, ds[i]->d_denied, ds[i]->d_would_deny,
		    fmt_ts(ds[i]->d_first, f, sizeof(f)),
		    fmt_ts(ds[i]->d_last, l, sizeof(l)));
	}
	if (ne > LEARN_ALLOW_MAX)
		printf("  warning: %zu entries, over the %d an annotation may "
		    "hold (podmeta would refuse it): try --collapse\n", ne,
		    LEARN_ALLOW_MAX);
	printf("  " ANNOTATION "=%s\n", value);
	printf("  %s\n\n", cmd);
}

/*
 * Text output ends with a suggestion per namespace: the union of its
 * workloads' destinations, as the namespace's annotation (the default for
 * every pod of the namespace that has none of its own).
 */
static void
print_namespaces(struct workload **ws, size_t nw)
{
	size_t	 i, j, k, n, ne;

	for (i = 0; i < nw; i = j) {
		struct dest	**ds;
		struct dest	*d;
		char		**e, *value;

		n = 0;
		for (j = i; j < nw && strcmp(ws[j]->w_ns, ws[i]->w_ns) == 0; j++)
			n += ws[j]->w_ndests;
		ds = xcalloc(n + 1, sizeof(*ds));
		n = 0;
		for (k = i; k < j; k++)
			for (d = ws[k]->w_dests; d != NULL; d = d->d_wnext)
				ds[n++] = d;
		/* the same host:port from two workloads: suggest() dedups */
		e = suggest(ds, n, &ne);
		value = join(e, ne);
		printf("namespace %s (%zu workloads): the default for its pods "
		    "without their own list:\n", ws[i]->w_ns, j - i);
		printf("  kubectl annotate --overwrite namespace %s "
		    ANNOTATION "='%s'\n", ws[i]->w_ns, value);
		for (k = 0; k < ne; k++)
			free(e[k]);
		free(e);
		free(value);
		free(ds);
	}
}

static void
report(void)
{
	struct workload	**ws, *w;
	struct dest	**ds, *d;
	size_t		 nw = 0, i, n, ne;

	ws = xcalloc(L.wh.ht_count + 1, sizeof(*ws));
	for (w = L.wfirst; w != NULL; w = w->w_next)
		ws[nw++] = w;
	qsort(ws, nw, sizeof(*ws), wl_cmp);
	for (i = 0; i < nw; i++) {
		char	**e, *value, *cmd;
		size_t	 k;

		w = ws[i];
		ds = xcalloc(w->w_ndests + 1, sizeof(*ds));
		n = 0;
		for (d = w->w_dests; d != NULL; d = d->d_wnext)
			ds[n++] = d;
		qsort(ds, n, sizeof(*ds), dest_cmp);
		e = suggest(ds, n, &ne);
		value = join(e, ne);
		cmd = command(w, value);
		if (L.json)
			print_json(w, ds, e, ne, value, cmd);
		else
			print_text(w, ds, ne, value, cmd);
		for (k = 0; k < ne; k++)
			free(e[k]);
		free(e);
		free(value);
		free(cmd);
		free(ds);
	}
	if (!L.json && nw > 0)
		print_namespaces(ws, nw);
	free(ws);
}

static void
summary(void)
{
	uint64_t	 sk = 0;
	int		 i;

	for (i = 0; i < SK_N; i++)
		sk += L.skipped[i];
	fprintf(stderr, "connectd-learn: %" PRIu64 " lines read, %" PRIu64
	    " used, %" PRIu64 " skipped (", L.read, L.used, sk);
	for (i = 0; i < SK_N; i++)
		fprintf(stderr, "%s%s %" PRIu64, i ? ", " : "", skip_names[i],
		    L.skipped[i]);
	fprintf(stderr, "), %" PRIu64 " filtered, %" PRIu64 " over_cap "
	    "(--max-entries %zu), %" PRIu64 " bad_sni; %zu workloads, %zu "
	    "destinations\n", L.filtered, L.over_cap, L.max_entries, L.bad_sni,
	    L.wh.ht_count, L.dh.ht_count);
}

/* Everything read so far forgotten (the options kept): fuzz/fuzz_learn.c. */
static void __attribute__((unused))
learn_reset(void)
{
	struct workload	*w, *wn;
	struct dest	*d, *dn;

	for (w = L.wfirst; w != NULL; w = wn) {
		wn = w->w_next;
		for (d = w->w_dests; d != NULL; d = dn) {
			dn = d->d_wnext;
			free(d);
		}
		free(w->w_ns);
		free(w->w_kind);
		free(w->w_name);
		free(w);
	}
	/* the nodes are freed above: the tables only give back buckets */
	htab_free(&L.dh);
	htab_free(&L.wh);
	memset(&L.dh, 0, sizeof(L.dh));
	memset(&L.wh, 0, sizeof(L.wh));
	L.wfirst = NULL;
	L.wlast = &L.wfirst;
	L.read = L.used = L.filtered = L.over_cap = L.bad_sni = 0;
	memset(L.skipped, 0, sizeof(L.skipped));
	L.read_error = 0;
}

#ifndef LEARN_FUZZ
static size_t
num_opt(const char *opt, const char *arg, size_t min, size_t max)
{
	char		*end;
	unsigned long long v;

	errno = 0;
	if (arg[0] < '0' || arg[0] > '9')
		die_usage("%s: not a number: %s", opt, arg);
	v = strtoull(arg, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		die_usage("%s: %s: not a number from %zu to %zu", opt, arg,
		    min, max);
	return (size_t)v;
}

int
main(int argc, char *argv[])
{
	enum { O_JSON = 256, O_COLLAPSE, O_SINCE, O_UNTIL, O_NS, O_DENIED,
	    O_MAX_ENTRIES, O_MAX_LINE };
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, O_JSON },
		{ "collapse", required_argument, NULL, O_COLLAPSE },
		{ "since", required_argument, NULL, O_SINCE },
		{ "until", required_argument, NULL, O_UNTIL },
		{ "namespace", required_argument, NULL, O_NS },
		{ "include-denied", no_argument, NULL, O_DENIED },
		{ "max-entries", required_argument, NULL, O_MAX_ENTRIES },
		{ "max-line", required_argument, NULL, O_MAX_LINE },
		{ NULL, 0, NULL, 0 }
	};
	int	 ch, i;

	L.max_entries = LEARN_MAX_ENTRIES;
	L.max_line = LEARN_MAX_LINE;
	L.since = INT64_MIN;
	L.until = INT64_MAX;
	L.wlast = &L.wfirst;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			usage(0);
		case O_JSON:
			L.json = 1;
			break;
		case O_COLLAPSE:
			L.collapse = (unsigned)num_opt("--collapse", optarg, 0,
			    1000000);
			break;
		case O_SINCE:
			if (parse_rfc3339(optarg, &L.since) == -1)
				die_usage("--since: not an RFC 3339 time: %s", optarg);
			break;
		case O_UNTIL:
			if (parse_rfc3339(optarg, &L.until) == -1)
				die_usage("--until: not an RFC 3339 time: %s", optarg);
			break;
		case O_NS:
			if (!valid_k8s(optarg))
				die_usage("--namespace: not a namespace: %s", optarg);
			L.ns = optarg;
			break;
		case O_DENIED:
			L.include_denied = 1;
			break;
		case O_MAX_ENTRIES:
			L.max_entries = num_opt("--max-entries", optarg, 1,
			    100000000);
			break;
		case O_MAX_LINE:
			L.max_line = num_opt("--max-line", optarg, 1024,
			    256 * 1024 * 1024);
			break;
		default:
			usage(2);
		}
	}
	if (optind == argc)
		read_file(stdin, "-");
	for (i = optind; i < argc; i++) {
		FILE	*f;

		if (strcmp(argv[i], "-") == 0) {
			read_file(stdin, "-");
			continue;
		}
		if ((f = fopen(argv[i], "r")) == NULL) {
			fprintf(stderr, "connectd-learn: %s: %s\n", argv[i],
			    strerror(errno));
			L.read_error = 1;
			continue;
		}
		read_file(f, argv[i]);
		fclose(f);
	}
	report();
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "connectd-learn: standard output: %s\n",
		    strerror(errno));
		L.read_error = 1;
	}
	summary();
	return L.read_error ? 1 : 0;
}
#endif /* LEARN_FUZZ */
