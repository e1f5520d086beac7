/* helper_conn.c: what connections ask of helpers: the log line's pod, external acl answers */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectd.h"
#include "helper.h"

/*
 * The lookups for one log line: one per running pool, in configuration
 * order.  The pod field comes from the first pool that answers with a
 * log= value.
 */
struct helper_log {
	size_t			 hl_n;
	struct helper_wait	 hl_wait[];
};

/* ---------------------------------------------------------- request lines */

/* One value, escaped as the protocol wants, after a space if not first. */
static int
helper_line_add(const struct helper_def *hd, struct buf *b, const char *v,
    size_t len, int escape)
{
	size_t	 n, avail;
	char	*p;

	if (b->b_len > 0 && buf_addc(b, ' ') == -1)
		return -1;
	if (v == NULL || len == 0) {
		v = "-";
		len = 1;
	}
	if (!escape || hd->hd_protocol25)
		return buf_add(b, v, len);
	n = helper_escape(NULL, 0, v, len);
	if ((p = buf_space(b, n, &avail)) == NULL || avail < n)
		return -1;
	/* buf_space() keeps room for the NUL helper_escape() writes */
	helper_escape(p, n + 1, v, len);
	buf_commit(b, n);
	return 0;
}

/* %DATA: the acl's arguments, each escaped, or "-". */
static int
helper_line_data(const struct helper_def *hd, struct buf *b,
    const char *data)
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
		if (helper_line_add(hd, b, p, (size_t)(e - p), 1) == -1)
			return -1;
		any = 1;
	}
	return any ? 0 : helper_line_add(hd, b, "-", 1, 0);
}

/* An address or a port of ss as the FORMAT codes give it; "-" if none. */
static int
helper_line_addr(const struct helper_def *hd, struct buf *b,
    const struct sockaddr_storage *ss, int want_port)
{
	char	 text[ADDR_STRLEN];
	int	 port, n = 0;

	if (addr_ntop(ss, text, sizeof(text), &port) == 0)
		n = want_port ? snprintf(text, sizeof(text), "%d", port) :
		    (int)strlen(text);
	return helper_line_add(hd, b, text, n > 0 ? (size_t)n : 0, 1);
}

/*
 * The request line of hd for rec, without channel ID or newline, in
 * the worker's line buffer (reset here).  -1 if longer than
 * HELPER_KEY_MAX or out of memory.
 */
static struct buf *
helper_line(struct worker *w, const struct helper_def *hd,
    const struct logrec *r, const char *data)
{
	struct buf	*b = &w->w_helpers->hr_line;
	const struct logtls *t;
	char		 num[16];
	const char	*s;
	size_t		 i;
	int		 rv = 0;

	buf_reset(b);
	for (i = 0; i < hd->hd_nfmt && rv == 0; i++) {
		switch (hd->hd_fmt[i]) {
		case HF_SRC:
		case HF_SRCPORT:
			rv = helper_line_addr(hd, b, &r->lr_client,
			    hd->hd_fmt[i] == HF_SRCPORT);
			break;
		case HF_MYADDR:
		case HF_MYPORT:
			rv = helper_line_addr(hd, b, &r->lr_local,
			    hd->hd_fmt[i] == HF_MYPORT);
			break;
		case HF_PORT:
			snprintf(num, sizeof(num), "%d", r->lr_port);
			rv = helper_line_add(hd, b, num,
			    r->lr_port > 0 ? strlen(num) : 0, 1);
			break;
		case HF_DST:
		case HF_METHOD:
		case HF_URI:
			s = hd->hd_fmt[i] == HF_DST ? r->lr_host :
			    hd->hd_fmt[i] == HF_METHOD ? r->lr_method :
			    r->lr_authority;
			rv = helper_line_add(hd, b, s, s ? strlen(s) : 0, 1);
			break;
		case HF_ACL:
			rv = helper_line_add(hd, b, hd->hd_name,
			    strlen(hd->hd_name), 1);
			break;
		case HF_DATA:
			rv = helper_line_data(hd, b, data);
			break;
		case HF_USER:
			s = r->lr_user;
			rv = helper_line_add(hd, b, s, s != NULL ? strlen(s) : 0,
			    1);
			break;
		case HF_SNI:
			/*
			 * The SNI of a complete ClientHello (as conn_hello()
			 * gives ssl::server_name), else "-": a request to
			 * forward, a tunnel that is not TLS, a hello without
			 * one, or a lookup made before the hello is read
			 * (the line's, at the head)
			 */
			t = r->lr_tls;
			if (t != NULL && t->lt_hello == PEEK_HELLO_COMPLETE &&
			    t->lt_has_sni)
				rv = helper_line_add(hd, b,
				    (const char *)t->lt_data, t->lt_sni_len, 1);
			else
				rv = helper_line_add(hd, b, NULL, 0, 0);
			break;
		case HF_CRED:
			/*
			 * Squid's basic auth helper protocol: "user password",
			 * each URL-escaped; data is the decoded "user:password"
			 * (conn.c), the line lives only in the cache entry.
			 */
			if (data == NULL || (s = strchr(data, ':')) == NULL) {
				rv = -1;
				break;
			}
			if ((rv = helper_line_add(hd, b, data,
			    (size_t)(s - data), 1)) == 0)
				rv = helper_line_add(hd, b, s + 1, strlen(s + 1),
				    1);
			break;
		}
	}
	/* Squid sends the acl's arguments last when FORMAT has no %DATA */
	if (rv == 0 && !hd->hd_has_data && !hd->hd_auth)
		rv = helper_line_data(hd, b, data);
	return rv == 0 ? b : NULL;
}

/* Start hw on hp for rec's request line. */
static void
helper_ask(struct helper_wait *hw, struct helper_pool *hp,
    const struct logrec *rec, const char *data)
{
	struct buf	*line;

	if ((line = helper_line(hp->hp_worker, hp->hp_def, rec, data)) ==
	    NULL) {
		hw->hw_pool = hp;
		helper_pool_ref(hp);
		helper_wait_fail(hw, "helper_down");
		return;
	}
	helper_wait_start(hw, hp, line->b_data, line->b_len);
}

/* ------------------------------------------------------------ log lines */

struct helper_log *
helper_log_start(struct worker *w, struct logrec *rec)
{
	struct helper_log	*hl;
	struct helper_pool	*hp;
	size_t			 n = 0;

	if (w->w_helpers == NULL)
		return NULL;
	/* auth_param's helper checks credentials: nothing for the line */
	TAILQ_FOREACH(hp, &w->w_helpers->hr_active, hp_entry)
		if (!hp->hp_def->hd_auth)
			n++;
	if (n == 0)
		return NULL;
	if ((hl = calloc(1, sizeof(*hl) + n * sizeof(hl->hl_wait[0]))) ==
	    NULL) {
		log_warn("helper: calloc");
		return NULL;
	}
	TAILQ_FOREACH(hp, &w->w_helpers->hr_active, hp_entry)
		if (!hp->hp_def->hd_auth)
			helper_ask(&hl->hl_wait[hl->hl_n++], hp, rec, NULL);
	/* answered from the cache: nothing to keep for the life of the tunnel */
	if (helper_log_settled(hl)) {
		helper_log_fill(hl, rec, 0);
		helper_log_free(hl);
		return NULL;
	}
	return hl;
}

int
helper_log_settled(const struct helper_log *hl)
{
	const struct helper_wait	*hw;
	size_t				 i;

	for (i = 0; i < hl->hl_n; i++) {
		hw = &hl->hl_wait[i];
		if (!hw->hw_done)
			return 0;
		if (hw->hw_answer != NULL && hw->hw_answer->ha_has_log)
			return 1;
	}
	return 1;
}

double
helper_log_park(struct helper_log *hl, void (*cb)(void *), void *arg)
{
	struct helper_wait	*hw, *first = NULL;
	double			 wait = 0.;
	size_t			 i;

	if (helper_log_settled(hl))
		return 0.;
	for (i = 0; i < hl->hl_n; i++) {
		hw = &hl->hl_wait[i];
		if (hw->hw_done)
			continue;
		if (first == NULL)
			first = hw;
		if (hw->hw_pool->hp_def->hd_log_wait > wait)
			wait = hw->hw_pool->hp_def->hd_log_wait;
		hw->hw_cb = cb;
		hw->hw_arg = arg;
	}
	if (wait > 0.)
		first->hw_pool->hp_st.hs_deferred++;
	return wait;
}

void
helper_log_fill(struct helper_log *hl, struct logrec *rec, int expired)
{
	struct helper_wait	*hw;
	const char		*error = NULL;
	size_t			 i;

	for (i = 0; expired && i < hl->hl_n; i++)
		helper_wait_fail(&hl->hl_wait[i], "timeout");
	/* the acls' policy or failure (helper_acl_policy()) comes first */
	for (i = 0; rec->lr_policy == NULL && rec->lr_policy_fail == NULL &&
	    i < hl->hl_n; i++) {
		hw = &hl->hl_wait[i];
		if (hw->hw_answer != NULL && hw->hw_answer->ha_policy != NULL)
			rec->lr_policy = logpolicy_dup(hw->hw_answer->ha_policy);
	}
	for (i = 0; i < hl->hl_n; i++) {
		hw = &hl->hl_wait[i];
		if (hw->hw_answer != NULL && hw->hw_answer->ha_has_log) {
			free(rec->lr_pod);
			if ((rec->lr_pod = strdup(hw->hw_answer->ha_log)) ==
			    NULL)
				break;
			rec->lr_pod_json = hw->hw_answer->ha_log_json;
			rec->lr_pod_error = NULL;
			return;
		}
		/*
		 * Why there is no pod, from the first helper in order: no
		 * answer (timeout, queue_full, helper_down, bh), or an answer
		 * without log=: ERR (it does not know the client) or OK.
		 */
		if (error == NULL)
			error = !hw->hw_done ? "timeout" :
			    hw->hw_error != NULL ? hw->hw_error :
			    hw->hw_answer == NULL ? "helper_down" :
			    hw->hw_answer->ha_result == HELPER_ERR ? "err" :
			    "no_log";
	}
	rec->lr_pod_error = error;
}

void
helper_log_free(struct helper_log *hl)
{
	size_t	 i;

	if (hl == NULL)
		return;
	for (i = 0; i < hl->hl_n; i++)
		helper_wait_clear(&hl->hl_wait[i]);
	free(hl);
}

/* ----------------------------------------------------------------- acls */

/*
 * An acl's answer: OK matches.  None at all (helper_down, queue_full,
 * timeout, bh: a malformed reply stops the child, so helper_down) is
 * ERR as in Squid, unless on_failure=open makes it OK: a policy helper
 * that is down then stops no traffic.
 */
static int
helper_acl_result(const struct helper_wait *hw)
{
	if (hw->hw_answer != NULL)
		return hw->hw_answer->ha_result == HELPER_OK;
	return hw->hw_pool != NULL && hw->hw_pool->hp_def->hd_fail_open;
}

int
helper_acl_answer(struct conn *c, const char *name, const char *data,
    int hello)
{
	struct helper_wait	*hw;
	struct helper_pool	*hp;

	if ((hp = helper_pool_find(c->c_worker, name)) == NULL)
		return 0;
	if (data != NULL && (data[0] == '\0' || strcmp(data, "-") == 0))
		data = NULL;
	/* only an %ssl::>sni line asks another question with the hello */
	hello = hello && hp->hp_def->hd_has_sni;
	TAILQ_FOREACH(hw, &c->c_acl_waits, hw_centry) {
		if (hw->hw_pool != hp || hw->hw_hello != hello ||
		    (hw->hw_data == NULL) != (data == NULL) || (data != NULL &&
		    strcmp(hw->hw_data, data) != 0))
			continue;
		if (!hw->hw_done)
			return -1;
		return helper_acl_result(hw);
	}
	if ((hw = calloc(1, sizeof(*hw))) == NULL)
		return 0;
	if (data != NULL && (hw->hw_data = strdup(data)) == NULL) {
		free(hw);
		return 0;
	}
	hw->hw_cb = conn_wake;
	hw->hw_arg = c;
	hw->hw_hello = hello;
	TAILQ_INSERT_TAIL(&c->c_acl_waits, hw, hw_centry);
	helper_ask(hw, hp, c->c_rec, data);
	if (!hw->hw_done) {
		hw->hw_deadline = ev_now(c->c_worker->w_loop) +
		    hp->hp_def->hd_timeout;
		return -1;
	}
	return helper_acl_result(hw);
}

ev_tstamp
helper_acl_deadline(const struct conn *c)
{
	const struct helper_wait	*hw;
	ev_tstamp			 when = 0.;

	TAILQ_FOREACH(hw, &c->c_acl_waits, hw_centry)
		if (!hw->hw_done && (when == 0. || hw->hw_deadline < when))
			when = hw->hw_deadline;
	return when;
}

void
helper_acl_expire(struct conn *c, ev_tstamp now, int all)
{
	struct helper_wait	*hw;

	TAILQ_FOREACH(hw, &c->c_acl_waits, hw_centry)
		if (!hw->hw_done && (all || hw->hw_deadline <= now))
			helper_wait_fail(hw, "timeout");
}

void
helper_acl_policy(struct conn *c, struct logrec *r)
{
	const struct helper_wait	*hw, *last = NULL;
	struct logpolicy		*p;

	/*
	 * The last question that got a policy, or got no answer from a
	 * helper whose line chose on_failure=: the one asked with the
	 * hello (%ssl::>sni) comes after the one asked at the CONNECT,
	 * and is what decided.  A failure says which way it went and why;
	 * a line without the option keeps today's null.
	 */
	TAILQ_FOREACH(hw, &c->c_acl_waits, hw_centry) {
		if (!hw->hw_done)
			continue;
		if (hw->hw_answer != NULL ? hw->hw_answer->ha_policy != NULL :
		    hw->hw_pool != NULL && hw->hw_pool->hp_def->hd_fail_set)
			last = hw;
	}
	if (last == NULL)
		return;
	if (last->hw_answer != NULL) {
		if ((p = logpolicy_dup(last->hw_answer->ha_policy)) != NULL) {
			free(r->lr_policy);
			r->lr_policy = p;
			r->lr_policy_fail = r->lr_policy_why = NULL;
		}
		return;
	}
	free(r->lr_policy);
	r->lr_policy = NULL;
	r->lr_policy_fail = last->hw_pool->hp_def->hd_fail_open ?
	    "fail_open" : "fail_closed";
	r->lr_policy_why = last->hw_error != NULL ? last->hw_error :
	    "helper_down";
}

void
helper_acl_free(struct conn *c)
{
	struct helper_wait	*hw;

	while ((hw = TAILQ_FIRST(&c->c_acl_waits)) != NULL) {
		TAILQ_REMOVE(&c->c_acl_waits, hw, hw_centry);
		helper_wait_clear(hw);
		free(hw);
	}
}

/* ----------------------------------------------------- readiness probes */

#define HELPER_PROBE_RETRY	1.0	/* seconds, after BH or no answer */

/*
 * One lookup on behalf of /readyz.  Squid asks a helper only when a
 * request needs it, but a pod that is not ready gets no requests: so
 * connectd asks once itself, as for a client at 127.0.0.1 (podmeta
 * holds a request until its first pod list is in, then answers it;
 * until then, or with no list in --sync-wait, it says BH).
 */
struct helper_probe {
	struct worker		*hpr_worker;
	struct helper_pool	*hpr_pool;	/* reference held */
	struct helper_wait	 hpr_wait;
	ev_timer		 hpr_timer;	/* the next try */
	TAILQ_ENTRY(helper_probe) hpr_entry;
};

static void	helper_probe_send(struct helper_probe *);

static void
helper_probe_free(struct helper_probe *p)
{
	ev_timer_stop(p->hpr_worker->w_loop, &p->hpr_timer);
	helper_wait_clear(&p->hpr_wait);
	helper_pool_unref(p->hpr_pool);
	TAILQ_REMOVE(&p->hpr_worker->w_helpers->hr_probes, p, hpr_entry);
	free(p);
}

/* The lookup is done: OK or ERR ends the probe; BH or none, again later. */
static void
helper_probe_result(struct helper_probe *p)
{
	struct helper_wait	*hw = &p->hpr_wait;
	int			 answered;

	answered = hw->hw_answer != NULL &&
	    (hw->hw_answer->ha_result == HELPER_OK ||
	    hw->hw_answer->ha_result == HELPER_ERR);
	helper_wait_clear(hw);
	if (answered || !p->hpr_pool->hp_active ||
	    p->hpr_worker->w_stopping) {
		helper_probe_free(p);
		return;
	}
	ev_timer_set(&p->hpr_timer, HELPER_PROBE_RETRY, 0.);
	ev_timer_start(p->hpr_worker->w_loop, &p->hpr_timer);
}

static void
helper_probe_cb(void *arg)
{
	helper_probe_result(arg);
}

static void
helper_probe_timer_cb(EV_P_ ev_timer *t, int revents)
{
	helper_probe_send(t->data);
}

static void
helper_probe_send(struct helper_probe *p)
{
	struct logrec		 rec;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&rec.lr_client;
	struct listen_conf	*lc;

	memset(&rec, 0, sizeof(rec));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((lc = TAILQ_FIRST(&p->hpr_worker->w_conf->c_listens)) != NULL)
		rec.lr_local = lc->lc_addr;
	memset(&p->hpr_wait, 0, sizeof(p->hpr_wait));
	p->hpr_wait.hw_cb = helper_probe_cb;
	p->hpr_wait.hw_arg = p;
	helper_ask(&p->hpr_wait, p->hpr_pool, &rec, NULL);
	/* from the cache, or refused at once: no callback comes */
	if (p->hpr_wait.hw_done)
		helper_probe_result(p);
}

void
helper_probe_start(struct worker *w)
{
	struct helper_pools	*hr = w->w_helpers;
	struct helper_pool	*hp;
	struct helper_probe	*p;

	if (hr == NULL || w->w_stopping)
		return;
	TAILQ_FOREACH(hp, &hr->hr_active, hp_entry) {
		if (hp->hp_st.hs_ok + hp->hp_st.hs_err > 0)
			continue;
		TAILQ_FOREACH(p, &hr->hr_probes, hpr_entry)
			if (p->hpr_pool == hp)
				break;
		if (p != NULL)
			continue;
		if ((p = calloc(1, sizeof(*p))) == NULL) {
			log_warn("helper: calloc");
			return;
		}
		p->hpr_worker = w;
		p->hpr_pool = hp;
		helper_pool_ref(hp);
		ev_init(&p->hpr_timer, helper_probe_timer_cb);
		p->hpr_timer.data = p;
		TAILQ_INSERT_TAIL(&hr->hr_probes, p, hpr_entry);
		log_debug("helper %s: one lookup for /readyz",
		    hp->hp_def->hd_name);
		helper_probe_send(p);
	}
}

void
helper_probe_stop(struct helper_pools *hr)
{
	while (!TAILQ_EMPTY(&hr->hr_probes))
		helper_probe_free(TAILQ_FIRST(&hr->hr_probes));
}
