/* metrics.c: the counters behind /metrics and their Prometheus text exposition (format 0.0.4) */
#include <sys/types.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectd.h"

/*
 * The text format is specified in Prometheus' "Exposition formats"
 * (https://prometheus.io/docs/instrumenting/exposition_formats/): one
 * "# HELP" and one "# TYPE" line per family, then its samples, label
 * values escaped (\\, \", \n).  Names follow "Metric and label naming"
 * (https://prometheus.io/docs/practices/naming/): a connectd_ prefix,
 * base units (seconds, bytes), counters ending in _total.  Debian 12
 * has no C client library (no libprom), and what is needed here is a
 * table of families and a printf: every family is one row of
 * metric_defs[] below, and a new one is a new row.
 */

#define KIND_TUNNEL	0	/* lines of CONNECT requests */
#define KIND_HTTP	1	/* every other line */


/*
 * Seconds.  DNS answers and connects on a LAN take a millisecond or
 * less, across the Internet tens to hundreds; connect_timeout defaults
 * to a minute.
 */
static const char *const bucket_text[METRICS_NBUCKETS] = {
	"0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "10"
};
static const double bucket_le[METRICS_NBUCKETS] = {
	0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10
};

/* The text being written; the first failure sticks (the bound is hit). */
struct mwriter {
	struct buf		*mw_buf;
	int			 mw_err;
	struct worker		*mw_worker;
	const struct metrics_view *mw_view;	/* summed over the workers */
	const struct metric_def	*mw_def;
};

struct metric_def {
	const char	*md_name;
	const char	*md_type;	/* counter, gauge, histogram */
	const char	*md_help;
	void		(*md_emit)(struct mwriter *);
	size_t		 md_arg;	/* an offset or an index, for md_emit */
};

/* ------------------------------------------------------------ counting */

void
metrics_init(struct worker *w)
{
	memset(&w->w_metrics, 0, sizeof(w->w_metrics));
	w->w_metrics.m_start = ev_time();
}

void
metrics_free(struct worker *w)
{
	if (w->w_metrics.m_lines != NULL)
		free(w->w_metrics.m_lines->mls_v);
	free(w->w_metrics.m_lines);
	w->w_metrics.m_lines = NULL;
}

void
metrics_observe(struct metrics_hist *mh, double v)
{
	size_t	 i;

	if (!(v >= 0.))		/* a clock that went back, or NaN */
		v = 0.;
	for (i = 0; i < METRICS_NBUCKETS; i++)
		if (v <= bucket_le[i]) {
			mh->mh_bucket[i]++;
			break;
		}
	mh->mh_count++;
	mh->mh_sum += v;
}

static int
metrics_line_cmp(const struct metrics_line *a, int kind, int status,
    int reason)
{
	if (a->ml_kind != kind)
		return a->ml_kind < kind ? -1 : 1;
	if (a->ml_status != status)
		return a->ml_status < status ? -1 : 1;
	if (a->ml_reason != reason)
		return a->ml_reason < reason ? -1 : 1;
	return 0;
}

/* Add n to the count of (kind, status, reason), kept sorted. */
static void
metrics_lines_add(struct metrics_lines *mls, int kind, int status, int reason,
    uint64_t n)
{
	struct metrics_line	*v;
	size_t			 lo, hi, mid;
	int			 c;

	lo = 0;
	hi = mls->mls_n;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = metrics_line_cmp(&mls->mls_v[mid], kind, status, reason);
		if (c == 0) {
			mls->mls_v[mid].ml_count += n;
			return;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (mls->mls_n == mls->mls_cap) {
		if ((v = reallocarray(mls->mls_v, mls->mls_cap * 2 + 16,
		    sizeof(*v))) == NULL) {
			log_warnx("metrics: out of memory");
			return;
		}
		mls->mls_v = v;
		mls->mls_cap = mls->mls_cap * 2 + 16;
	}
	memmove(&mls->mls_v[lo + 1], &mls->mls_v[lo],
	    (mls->mls_n - lo) * sizeof(*mls->mls_v));
	mls->mls_v[lo].ml_kind = (uint8_t)kind;
	mls->mls_v[lo].ml_status = (uint16_t)status;
	mls->mls_v[lo].ml_reason = (uint8_t)reason;
	mls->mls_v[lo].ml_count = n;
	mls->mls_n++;
}

/*
 * Count a line as accesslog_submit() writes it, so that the counters
 * and the lines of a run agree: a line of a CONNECT request is a
 * tunnel's, any other (a forwarded request, or a head that never named
 * a method) a request's.  Statuses are 0 to 999 and reasons the
 * enum's, so there are at most a few thousand distinct entries; in
 * practice a few dozen.
 */
void
metrics_line(struct worker *w, const struct logrec *rec)
{
	struct metrics		*m = &w->w_metrics;
	struct metrics_lines	*mls;
	int			 kind, status, reason;

	kind = rec->lr_method != NULL && strcmp(rec->lr_method, "CONNECT") ==
	    0 ? KIND_TUNNEL : KIND_HTTP;
	status = rec->lr_status > 0 && rec->lr_status < 1000 ?
	    rec->lr_status : 0;
	reason = (int)rec->lr_close;
	m->m_bytes[kind][0] += rec->lr_bytes_up;
	m->m_bytes[kind][1] += rec->lr_bytes_down;
	/* what the line says of the tunnel's first bytes (peek.c) */
	if (kind == KIND_TUNNEL) {
		m->m_proto[rec->lr_proto == TLSHELLO_PROTO_SSLV2 ?
		    TLSHELLO_PROTO_TLS : rec->lr_proto < nitems(m->m_proto) ?
		    rec->lr_proto : TLSHELLO_PROTO_NONE]++;
		if (rec->lr_proto == TLSHELLO_PROTO_TLS && rec->lr_tls != NULL &&
		    rec->lr_tls->lt_hello != PEEK_HELLO_NONE) {
			m->m_hello[rec->lr_tls->lt_hello % PEEK_NHELLO]++;
			m->m_sni_match[rec->lr_tls->lt_match % PEEK_NMATCH]++;
		}
	}

	if ((mls = m->m_lines) == NULL &&
	    (mls = m->m_lines = calloc(1, sizeof(*mls))) == NULL)
		return;
	metrics_lines_add(mls, kind, status, reason, 1);
}

/* ------------------------------------------------------------- writing */

static void
mw_printf(struct mwriter *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
mw_printf(struct mwriter *mw, const char *fmt, ...)
{
	char	 small[256], *big = NULL;
	va_list	 ap;
	int	 n;

	if (mw->mw_err)
		return;
	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		mw->mw_err = 1;
		return;
	}
	if ((size_t)n >= sizeof(small)) {
		va_start(ap, fmt);
		n = vasprintf(&big, fmt, ap);
		va_end(ap);
		if (n < 0) {
			mw->mw_err = 1;
			return;
		}
	}
	if (buf_add(mw->mw_buf, big != NULL ? big : small, (size_t)n) == -1)
		mw->mw_err = 1;
	free(big);
}

/* A label value as the format wants it: \\, \" and \n escaped. */
static void
mw_label_value(struct mwriter *mw, const char *s)
{
	const char	*p;

	for (p = s; *p != '\0' && !mw->mw_err; p++) {
		if (*p == '\\' || *p == '"')
			mw_printf(mw, "\\%c", *p);
		else if (*p == '\n')
			mw_printf(mw, "\\n");
		else if (buf_addc(mw->mw_buf, *p) == -1)
			mw->mw_err = 1;
	}
}

/*
 * One sample of the current family: name, then suffix (_bucket, _sum,
 * _count or ""), labels as NULL-terminated name, value pairs, the value.
 */
static void
mw_sample(struct mwriter *mw, const char *suffix, const char *const *labels,
    const char *value)
{
	size_t	 i;

	mw_printf(mw, "%s%s", mw->mw_def->md_name, suffix);
	if (labels != NULL && labels[0] != NULL) {
		mw_printf(mw, "{");
		for (i = 0; labels[i] != NULL; i += 2) {
			mw_printf(mw, "%s%s=\"", i > 0 ? "," : "", labels[i]);
			mw_label_value(mw, labels[i + 1]);
			mw_printf(mw, "\"");
		}
		mw_printf(mw, "}");
	}
	mw_printf(mw, " %s\n", value);
}

static void
mw_u64(struct mwriter *mw, const char *const *labels, uint64_t v)
{
	char	 num[32];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	mw_sample(mw, "", labels, num);
}

static void
mw_double(struct mwriter *mw, const char *suffix, const char *const *labels,
    double v)
{
	char	 num[64];

	/* %.17g gives the double back exactly; Go's parser takes it */
	snprintf(num, sizeof(num), "%.17g", v);
	mw_sample(mw, suffix, labels, num);
}

/* ------------------------------------------------------------ families */

#define MFIELD(f)	offsetof(struct metrics, f)

static void
emit_field(struct mwriter *mw)
{
	const char	*m = (const char *)&mw->mw_view->v_m;

	mw_u64(mw, NULL, *(const uint64_t *)(m + mw->mw_def->md_arg));
}

static void
emit_stat(struct mwriter *mw)
{
	const char	*st = (const char *)&mw->mw_view->v_stats;

	mw_u64(mw, NULL, *(const uint64_t *)(st + mw->mw_def->md_arg));
}

static void
emit_hist(struct mwriter *mw)
{
	const struct metrics_hist	*mh;
	const char			*labels[3] = { "le", NULL, NULL };
	uint64_t			 cum = 0;
	char				 num[32];
	size_t				 i;

	mh = (const struct metrics_hist *)((const char *)
	    &mw->mw_view->v_m + mw->mw_def->md_arg);
	for (i = 0; i < METRICS_NBUCKETS; i++) {
		cum += mh->mh_bucket[i];
		labels[1] = bucket_text[i];
		snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
		mw_sample(mw, "_bucket", labels, num);
	}
	labels[1] = "+Inf";
	snprintf(num, sizeof(num), "%llu", (unsigned long long)mh->mh_count);
	mw_sample(mw, "_bucket", labels, num);
	mw_double(mw, "_sum", NULL, mh->mh_sum);
	mw_sample(mw, "_count", NULL, num);
}

static void
emit_lines(struct mwriter *mw)
{
	const struct metrics_lines	*mls = mw->mw_view->v_lines;
	const struct metrics_line	*ml;
	const char			*labels[5] = { "status", NULL, "reason",
					    NULL, NULL };
	const char			*reason;
	char				 status[16];
	size_t				 i;

	for (i = 0; mls != NULL && i < mls->mls_n; i++) {
		ml = &mls->mls_v[i];
		if (ml->ml_kind != mw->mw_def->md_arg)
			continue;
		snprintf(status, sizeof(status), "%u", ml->ml_status);
		reason = logrec_close_name((enum close_reason)ml->ml_reason);
		labels[1] = status;
		labels[3] = reason != NULL ? reason : "none";
		mw_u64(mw, labels, ml->ml_count);
	}
}

static void
emit_bytes(struct mwriter *mw)
{
	static const char *const kinds[] = { "tunnel", "http" };
	static const char *const dirs[] = { "up", "down" };
	const char	*labels[5] = { "kind", NULL, "direction", NULL, NULL };
	size_t		 k, d;

	for (k = 0; k < 2; k++)
		for (d = 0; d < 2; d++) {
			labels[1] = kinds[k];
			labels[3] = dirs[d];
			mw_u64(mw, labels,
			    mw->mw_view->v_m.m_bytes[k][d]);
		}
}

/*
 * Tunnel lines by their "proto" (none: null), and those with a "tls"
 * object by its hello and sni_match: every value, so none is missing.
 */
static void
emit_proto(struct mwriter *mw)
{
	static const int order[] = { TLSHELLO_PROTO_TLS, TLSHELLO_PROTO_SSH,
	    TLSHELLO_PROTO_HTTP, TLSHELLO_PROTO_UNKNOWN, TLSHELLO_PROTO_NONE };
	const char	*labels[3] = { "proto", NULL, NULL };
	const char	*name;
	size_t		 i;

	for (i = 0; i < nitems(order); i++) {
		name = logrec_proto_name(order[i]);
		labels[1] = name != NULL ? name : "none";
		mw_u64(mw, labels, mw->mw_view->v_m.m_proto[order[i]]);
	}
}

/* Tunnels whose client bytes were held for the hello, by how it ended. */
static void
emit_holds(struct mwriter *mw)
{
	static const char *const outcome[] = { "released", "denied",
	    "aborted" };
	const char	*labels[3] = { "outcome", NULL, NULL };
	size_t		 i;

	for (i = 0; i < nitems(outcome); i++) {
		labels[1] = outcome[i];
		mw_u64(mw, labels, mw->mw_view->v_m.m_holds[i]);
	}
}

static void
emit_tls(struct mwriter *mw)
{
	const struct metrics	*m = &mw->mw_view->v_m;
	const char		*labels[3] = { "result", NULL, NULL };
	size_t			 i, n = mw->mw_def->md_arg ? PEEK_NMATCH :
				    PEEK_NHELLO;

	for (i = 1; i < n; i++) {
		labels[1] = mw->mw_def->md_arg ?
		    logrec_match_name((enum peek_match)i) :
		    logrec_hello_name((enum peek_hello)i);
		mw_u64(mw, labels, mw->mw_def->md_arg ? m->m_sni_match[i] :
		    m->m_hello[i]);
	}
}

/* Every state a connection can be seen in, open or not, so none is missing. */
static void
emit_conn_states(struct mwriter *mw)
{
	const char	*labels[3] = { "state", NULL, NULL };
	size_t		 i;

	for (i = 0; i < CONN_CLOSED; i++) {
		labels[1] = conn_state_name((enum conn_state)i);
		mw_u64(mw, labels, mw->mw_view->v_states[i]);
	}
}

static void
emit_tunnels_open(struct mwriter *mw)
{
	mw_u64(mw, NULL, mw->mw_view->v_tunnels);
}

/* peek.c's readers allocated now: 0 once every open tunnel's hellos are read */
static void
emit_peek_readers(struct mwriter *mw)
{
	mw_u64(mw, NULL, mw->mw_view->v_peek);
}

/* relay.c's pipe pool (struct relay_pool): md_arg is the field */
static void
emit_pipes(struct mwriter *mw)
{
	const char	*p = (const char *)&mw->mw_view->v_pipes;

	mw_u64(mw, NULL, *(const uint64_t *)(p + mw->mw_def->md_arg));
}

static void
emit_pipes_gauge(struct mwriter *mw)
{
	const char	*p = (const char *)&mw->mw_view->v_pipes;

	mw_u64(mw, NULL, *(const unsigned *)(p + mw->mw_def->md_arg));
}

static void
emit_parked(struct mwriter *mw)
{
	mw_u64(mw, NULL, mw->mw_view->v_parked);
}

static void
emit_build_info(struct mwriter *mw)
{
	const char	*labels[3] = { "version", PACKAGE_VERSION, NULL };

	mw_u64(mw, labels, 1);
}

static void
emit_start_time(struct mwriter *mw)
{
	mw_double(mw, "", NULL, mw->mw_view->v_m.m_start);
}

static void
emit_ready(struct mwriter *mw)
{
	mw_u64(mw, NULL, mw->mw_view->v_unready[0] == '\0');
}

static void
emit_reload_ok(struct mwriter *mw)
{
	mw_u64(mw, NULL, !mw->mw_view->v_m.m_reload_failed);
}

/* helper_metrics() calls this for each helper; md_arg is the field. */
static void
emit_helper_one(void *arg, const char *name, const struct helper_counts *hc)
{
	struct mwriter	*mw = arg;
	const char	*labels[3] = { "helper", name, NULL };

	mw_u64(mw, labels, *(const uint64_t *)((const char *)hc +
	    mw->mw_def->md_arg));
}

static void
emit_helper(struct mwriter *mw)
{
	size_t	 i;

	for (i = 0; i < mw->mw_view->v_nhelpers; i++)
		emit_helper_one(mw, mw->mw_view->v_helpers[i].vh_name,
		    &mw->mw_view->v_helpers[i].vh_counts);
}

/* The families broken down by a second label: md_arg is HB_* below. */
#define HB_RESULT	0
#define HB_ERROR	1
static const struct {
	int		 hb_family;
	const char	*hb_value;
	size_t		 hb_off;
} helper_breakdown[] = {
	{ HB_RESULT, "OK", offsetof(struct helper_counts, hm_ok) },
	{ HB_RESULT, "ERR", offsetof(struct helper_counts, hm_err) },
	{ HB_RESULT, "BH", offsetof(struct helper_counts, hm_bh) },
	{ HB_ERROR, "timeout", offsetof(struct helper_counts, hm_timeouts) },
	{ HB_ERROR, "queue_full",
	    offsetof(struct helper_counts, hm_queue_full) },
	{ HB_ERROR, "helper_down", offsetof(struct helper_counts, hm_down) },
	{ HB_ERROR, "malformed", offsetof(struct helper_counts, hm_malformed) },
};

static void
emit_helper_by_one(void *arg, const char *name,
    const struct helper_counts *hc)
{
	struct mwriter	*mw = arg;
	const char	*labels[5] = { "helper", name, NULL, NULL, NULL };
	size_t		 i;

	labels[2] = mw->mw_def->md_arg == HB_RESULT ? "result" : "error";
	for (i = 0; i < nitems(helper_breakdown); i++) {
		if ((size_t)helper_breakdown[i].hb_family != mw->mw_def->md_arg)
			continue;
		labels[3] = helper_breakdown[i].hb_value;
		mw_u64(mw, labels, *(const uint64_t *)((const char *)hc +
		    helper_breakdown[i].hb_off));
	}
}

static void
emit_helper_by(struct mwriter *mw)
{
	size_t	 i;

	for (i = 0; i < mw->mw_view->v_nhelpers; i++)
		emit_helper_by_one(mw, mw->mw_view->v_helpers[i].vh_name,
		    &mw->mw_view->v_helpers[i].vh_counts);
}

/*
 * One sample per log output, labelled as access_log names it: a file as
 * "stdio:PATH", the others as written ("tcp://host:port", "syslog:...").
 */
static void
emit_sink(struct mwriter *mw)
{
	struct sink_counters	 sc;
	struct sink		*s;
	char			 name[1024];
	const char		*labels[3] = { "output", name, NULL };

	for (s = sink_next(NULL); s != NULL; s = sink_next(s)) {
		sink_stats(s, &sc);
		snprintf(name, sizeof(name), "%s%s", strcmp(sink_kind(s),
		    "stdio") == 0 ? "stdio:" : "", sink_name(s));
		mw_u64(mw, labels, *(const uint64_t *)((const char *)&sc +
		    mw->mw_def->md_arg));
	}
}

/* workers > 1 only: which loops take the connections (SO_REUSEPORT) */
static void
emit_worker_accepted(struct mwriter *mw)
{
	const char	*labels[3] = { "worker", NULL, NULL };
	char		 num[16];
	unsigned	 i;

	for (i = 0; i < mw->mw_view->v_nworkers; i++) {
		snprintf(num, sizeof(num), "%u", i);
		labels[1] = num;
		mw_u64(mw, labels, mw->mw_view->v_accepted[i]);
	}
}

#define HC(f)	offsetof(struct helper_counts, f)
#define SC(f)	offsetof(struct sink_counters, f)
#define ST(f)	offsetof(struct stats, f)
#define RP(f)	offsetof(struct relay_pool, f)

static const struct metric_def metric_defs[] = {
	{ "connectd_build_info", "gauge",
	    "Always 1; the version connectd was built from.",
	    emit_build_info, 0 },
	{ "process_start_time_seconds", "gauge",
	    "Start time of the process since the Unix epoch in seconds.",
	    emit_start_time, 0 },
	{ "connectd_ready", "gauge",
	    "1 while /readyz answers 200, else 0.", emit_ready, 0 },
	{ "connectd_connections_accepted_total", "counter",
	    "Client connections accepted on the http_port listeners.",
	    emit_stat, ST(st_accepted) },
	{ "connectd_worker_connections_accepted_total", "counter",
	    "Client connections accepted, by worker (workers > 1 only).",
	    emit_worker_accepted, 1 },
	{ "connectd_accept_errors_total", "counter",
	    "Failed accept() calls on the http_port listeners.",
	    emit_stat, ST(st_accept_errors) },
	{ "connectd_connections_empty_total", "counter",
	    "Client connections closed before sending a byte "
	    "(TCP probes, scanners): they get no log line.",
	    emit_field, MFIELD(m_empty) },
	{ "connectd_connections_open", "gauge",
	    "Client connections open, by state.", emit_conn_states, 0 },
	{ "connectd_tunnels_open", "gauge",
	    "Tunnels established and relaying (state relay).",
	    emit_tunnels_open, 0 },
	{ "connectd_tls_peek_readers", "gauge",
	    "Hello readers allocated now (tls_peek): one per tunnel direction "
	    "whose first bytes are still being read.", emit_peek_readers, 0 },
	{ "connectd_tunnels_total", "counter",
	    "Log lines of CONNECT requests, by status sent and close reason.",
	    emit_lines, KIND_TUNNEL },
	{ "connectd_http_requests_total", "counter",
	    "Log lines of every other request (forwarded plain HTTP, "
	    "or a head without a method), by status sent and close reason.",
	    emit_lines, KIND_HTTP },
	{ "connectd_tunnels_proto_total", "counter",
	    "Log lines of CONNECT requests by their proto field: what the "
	    "client sent first (none: no byte, or tls_peek off).",
	    emit_proto, 0 },
	{ "connectd_tls_hello_total", "counter",
	    "Log lines of CONNECT requests with a tls object, by how the "
	    "ClientHello's read ended (its hello member).", emit_tls, 0 },
	{ "connectd_tls_sni_match_total", "counter",
	    "Log lines of CONNECT requests whose ClientHello was read "
	    "whole, by sni_match: the SNI against the CONNECT host.",
	    emit_tls, 1 },
	{ "connectd_tls_holds_total", "counter",
	    "Tunnels whose client bytes were held until the ClientHello was "
	    "read (a rule on ssl::server_name, ssl::server_name_regex or "
	    "tls_sni_match could change the answer), by outcome: released "
	    "(allowed), denied (closed with none of them sent) or aborted "
	    "(closed for another reason first: a reset, a timeout, a "
	    "shutdown).", emit_holds, 0 },
	{ "connectd_bytes_total", "counter",
	    "The log lines' bytes_up (client to server) and bytes_down, "
	    "counted when each line is written.", emit_bytes, 0 },
	{ "connectd_relay_splice_bytes_total", "counter",
	    "Tunnel bytes moved by splice(2) through a pipe (relay_splice), "
	    "counted as they reach the destination; also in "
	    "connectd_bytes_total.", emit_pipes, RP(rpl_bytes) },
	{ "connectd_relay_splice_tunnels_total", "counter",
	    "Tunnels that moved at least one byte by splice(2).",
	    emit_pipes, RP(rpl_tunnels) },
	{ "connectd_relay_pipes_in_use", "gauge",
	    "Pipes held by tunnel directions now: one per direction whose "
	    "bytes wait in a pipe for the destination.",
	    emit_pipes_gauge, RP(rpl_used) },
	{ "connectd_relay_pipes_pooled", "gauge",
	    "Empty pipes kept in the pool (two descriptors each).",
	    emit_pipes_gauge, RP(rpl_nfree) },
	{ "connectd_relay_pipe_pool_exhausted_total", "counter",
	    "Reads that would have gone by splice(2) but found no pipe "
	    "(relay_splice_pipes reached, or no descriptor): copied instead.",
	    emit_pipes, RP(rpl_exhausted) },
	{ "connectd_dns_resolution_duration_seconds", "histogram",
	    "Name resolutions that went to the resolver (c-ares), "
	    "answered or failed.", emit_hist, MFIELD(m_dns) },
	{ "connectd_connect_duration_seconds", "histogram",
	    "connect() to an origin server until it was established.",
	    emit_hist, MFIELD(m_connect) },
	{ "connectd_helper_queue_length", "gauge",
	    "Lookups waiting for a free helper child.",
	    emit_helper, HC(hm_queued) },
	{ "connectd_helper_children", "gauge",
	    "Helper children running.", emit_helper, HC(hm_running) },
	{ "connectd_helper_lookups_total", "counter",
	    "Lookups asked of the helper, from the cache or not.",
	    emit_helper, HC(hm_lookups) },
	{ "connectd_helper_cache_hits_total", "counter",
	    "Lookups answered from the helper's cache.",
	    emit_helper, HC(hm_hits) },
	{ "connectd_helper_requests_total", "counter",
	    "Request lines sent to helper children.",
	    emit_helper, HC(hm_requests) },
	{ "connectd_helper_answers_total", "counter",
	    "Answers from helper children, by result.",
	    emit_helper_by, HB_RESULT },
	{ "connectd_helper_errors_total", "counter",
	    "Lookups that got no answer, by why, and malformed replies.",
	    emit_helper_by, HB_ERROR },
	{ "connectd_helper_restarts_total", "counter",
	    "Helper children started again after one failed.",
	    emit_helper, HC(hm_restarts) },
	{ "connectd_log_lines_waiting", "gauge",
	    "Finished log lines waiting for a helper's answer (log-wait).",
	    emit_parked, 0 },
	{ "connectd_log_lines_written_total", "counter",
	    "Log lines written, by access_log output.",
	    emit_sink, SC(sc_written) },
	{ "connectd_log_lines_dropped_total", "counter",
	    "Log lines dropped: the output's queue was full, a line too "
	    "big, or what was left at exit.",
	    emit_sink, SC(sc_dropped) },
	{ "connectd_log_write_errors_total", "counter",
	    "Log lines lost to write errors.", emit_sink, SC(sc_errors) },
	{ "connectd_log_lines_truncated_total", "counter",
	    "Log lines shortened to fit a datagram (udp, syslog).",
	    emit_sink, SC(sc_truncated) },
	{ "connectd_log_reconnects_total", "counter",
	    "Connections of a network log output after its first.",
	    emit_sink, SC(sc_reconnects) },
	{ "connectd_log_connect_failures_total", "counter",
	    "Failed or broken connections of a network log output.",
	    emit_sink, SC(sc_connect_failures) },
	{ "connectd_config_reloads_total", "counter",
	    "Configuration reloads (SIGHUP) attempted.",
	    emit_field, MFIELD(m_reloads) },
	{ "connectd_config_reload_failures_total", "counter",
	    "Configuration reloads refused (the old one stayed).",
	    emit_field, MFIELD(m_reload_failures) },
	{ "connectd_config_last_reload_successful", "gauge",
	    "0 if the last reload was refused, else 1.", emit_reload_ok, 0 },
};

/*
 * The whole exposition into b (appended; b's bound applies).  Returns
 * 0, or -1 if the bound was reached or memory ran out: b then holds a
 * partial text that must not be served.
 */
int
metrics_render(struct worker *w, struct buf *b)
{
	struct metrics_view	 v;
	struct mwriter		 mw;
	size_t			 i;

	(void)wgroup_view(w->w_group, &v);
	memset(&mw, 0, sizeof(mw));
	mw.mw_buf = b;
	mw.mw_worker = w;
	mw.mw_view = &v;
	for (i = 0; i < nitems(metric_defs) && !mw.mw_err; i++) {
		/* a family of several loops: none with one (as it was) */
		if (metric_defs[i].md_emit == emit_worker_accepted &&
		    v.v_nworkers < 2)
			continue;
		mw.mw_def = &metric_defs[i];
		mw_printf(&mw, "# HELP %s %s\n# TYPE %s %s\n",
		    metric_defs[i].md_name, metric_defs[i].md_help,
		    metric_defs[i].md_name, metric_defs[i].md_type);
		metric_defs[i].md_emit(&mw);
	}
	metrics_view_free(&v);
	return mw.mw_err ? -1 : 0;
}

/* ----------------------------------------------------------------- views */

/* helper_metrics() calls this for each helper: a copy for the view. */
static void
view_helper_one(void *arg, const char *name, const struct helper_counts *hc)
{
	metrics_view_helper(arg, name, hc);
}

/* Add a helper's counts to the view v (arg), by name. */
void
metrics_view_helper(void *arg, const char *name, const struct helper_counts *hc)
{
	struct metrics_view	*v = arg;
	struct metrics_vhelper	*vh;

	if ((vh = reallocarray(v->v_helpers, v->v_nhelpers + 1,
	    sizeof(*vh))) == NULL)
		return;
	v->v_helpers = vh;
	vh += v->v_nhelpers;
	if ((vh->vh_name = strdup(name)) == NULL)
		return;
	vh->vh_counts = *hc;
	v->v_nhelpers++;
}

/*
 * w's counters as they are now, into v (whose old contents it frees),
 * in w's own thread: the connections are walked here so that no other
 * thread ever reads a worker's lists.
 */
void
metrics_snapshot(struct worker *w, struct metrics_view *v)
{
	const struct metrics_lines	*mls = w->w_metrics.m_lines;
	const char			*why;
	struct conn			*c;

	metrics_view_free(v);
	v->v_stats = w->w_stats;
	v->v_m = w->w_metrics;
	v->v_m.m_lines = NULL;
	if (mls != NULL && mls->mls_n > 0 &&
	    (v->v_lines = calloc(1, sizeof(*v->v_lines))) != NULL &&
	    (v->v_lines->mls_v = calloc(mls->mls_n,
	    sizeof(*mls->mls_v))) != NULL) {
		memcpy(v->v_lines->mls_v, mls->mls_v,
		    mls->mls_n * sizeof(*mls->mls_v));
		v->v_lines->mls_n = v->v_lines->mls_cap = mls->mls_n;
	}
	TAILQ_FOREACH(c, &w->w_conns, c_entry) {
		if (c->c_state < CONN_CLOSED)
			v->v_states[c->c_state]++;
		if (c->c_state == CONN_RELAY)
			v->v_tunnels++;
		v->v_peek += (c->c_peek[0] != NULL) + (c->c_peek[1] != NULL);
	}
	v->v_parked = w->w_nparked;
	v->v_pipes = w->w_pipes;
	v->v_pipes.rpl_free = NULL;
	helper_metrics(w, view_helper_one, v);
	if ((why = admin_unready(w)) != NULL)
		snprintf(v->v_unready, sizeof(v->v_unready), "%s", why);
	if (w->w_index < WORKERS_MAX) {
		v->v_accepted[w->w_index] = w->w_stats.st_accepted;
		v->v_nworkers = w->w_index + 1;
	}
}

static void
view_hist_add(struct metrics_hist *d, const struct metrics_hist *s)
{
	size_t	 i;

	for (i = 0; i < METRICS_NBUCKETS; i++)
		d->mh_bucket[i] += s->mh_bucket[i];
	d->mh_count += s->mh_count;
	d->mh_sum += s->mh_sum;
}

/*
 * Add another worker's view to d (worker 0's, which gives the process's
 * own: start time, reloads).  Helpers are matched by name.
 */
void
metrics_view_add(struct metrics_view *d, const struct metrics_view *s)
{
	struct metrics_vhelper	*vh;
	const struct metrics_line *ml;
	uint64_t		*du, *su;
	size_t			 i, j, k;

	du = (uint64_t *)&d->v_stats;
	su = (uint64_t *)(uintptr_t)&s->v_stats;
	for (i = 0; i < sizeof(struct stats) / sizeof(uint64_t); i++)
		du[i] += su[i];
	d->v_m.m_empty += s->v_m.m_empty;
	for (i = 0; i < 2; i++)
		for (j = 0; j < 2; j++)
			d->v_m.m_bytes[i][j] += s->v_m.m_bytes[i][j];
	for (i = 0; i < nitems(d->v_m.m_proto); i++)
		d->v_m.m_proto[i] += s->v_m.m_proto[i];
	for (i = 0; i < PEEK_NMATCH; i++)
		d->v_m.m_sni_match[i] += s->v_m.m_sni_match[i];
	for (i = 0; i < PEEK_NHELLO; i++)
		d->v_m.m_hello[i] += s->v_m.m_hello[i];
	for (i = 0; i < nitems(d->v_m.m_holds); i++)
		d->v_m.m_holds[i] += s->v_m.m_holds[i];
	d->v_pipes.rpl_nfree += s->v_pipes.rpl_nfree;
	d->v_pipes.rpl_used += s->v_pipes.rpl_used;
	d->v_pipes.rpl_bytes += s->v_pipes.rpl_bytes;
	d->v_pipes.rpl_tunnels += s->v_pipes.rpl_tunnels;
	d->v_pipes.rpl_exhausted += s->v_pipes.rpl_exhausted;
	view_hist_add(&d->v_m.m_dns, &s->v_m.m_dns);
	view_hist_add(&d->v_m.m_connect, &s->v_m.m_connect);
	if (s->v_lines != NULL && (d->v_lines != NULL ||
	    (d->v_lines = calloc(1, sizeof(*d->v_lines))) != NULL))
		for (i = 0; i < s->v_lines->mls_n; i++) {
			ml = &s->v_lines->mls_v[i];
			metrics_lines_add(d->v_lines, ml->ml_kind,
			    ml->ml_status, ml->ml_reason, ml->ml_count);
		}
	for (i = 0; i < CONN_CLOSED; i++)
		d->v_states[i] += s->v_states[i];
	d->v_tunnels += s->v_tunnels;
	d->v_peek += s->v_peek;
	d->v_parked += s->v_parked;
	for (i = 0; i < s->v_nhelpers; i++) {
		for (j = 0; j < d->v_nhelpers; j++)
			if (strcmp(d->v_helpers[j].vh_name,
			    s->v_helpers[i].vh_name) == 0)
				break;
		if (j == d->v_nhelpers) {
			view_helper_one(d, s->v_helpers[i].vh_name,
			    &s->v_helpers[i].vh_counts);
			continue;
		}
		vh = &d->v_helpers[j];
		du = (uint64_t *)&vh->vh_counts;
		su = (uint64_t *)(uintptr_t)&s->v_helpers[i].vh_counts;
		for (k = 0; k < sizeof(struct helper_counts) /
		    sizeof(uint64_t); k++)
			du[k] += su[k];
	}
	if (d->v_unready[0] == '\0' && s->v_unready[0] != '\0')
		snprintf(d->v_unready, sizeof(d->v_unready), "%s",
		    s->v_unready);
	for (i = 0; i < s->v_nworkers && i < WORKERS_MAX; i++)
		d->v_accepted[i] += s->v_accepted[i];
	if (s->v_nworkers > d->v_nworkers)
		d->v_nworkers = s->v_nworkers;
}

void
metrics_view_free(struct metrics_view *v)
{
	size_t	 i;

	if (v->v_lines != NULL)
		free(v->v_lines->mls_v);
	free(v->v_lines);
	for (i = 0; i < v->v_nhelpers; i++)
		free(v->v_helpers[i].vh_name);
	free(v->v_helpers);
	memset(v, 0, sizeof(*v));
}
