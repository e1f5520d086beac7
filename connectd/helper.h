/* helper.h: external ACL helpers, private to helper_*.c: definitions, cache, children, waiters */
#ifndef HELPER_H
#define HELPER_H

#include "hash.h"
#include "helperproto.h"

/*
 * Four files, by ownership, each using only the ones below it:
 *
 *   helper_conn.c   what a connection asks: the log line's pod lookups,
 *                   the answers external acls wait for; request lines
 *   helper_cache.c  answers by request line (ttl, negative_ttl, grace),
 *                   lookups on their way and who waits for them
 *   helper_pool.c   the children of one definition (spawn, channel IDs,
 *                   queue, restarts) and the worker's pools across reloads
 *   helper_conf.c   external_acl_type lines: parse, dump, copy, free
 */

#define HELPER_KEY_MAX		(32 * 1024)	/* a longer request line fails */
#define HELPER_REPLY_MAX	(64 * 1024)	/* a longer reply line is malformed */
#define HELPER_ERRLINE_MAX	1024		/* stderr lines are cut here */
#define HELPER_FORMATS_MAX	32
#define HELPER_CONCURRENCY_MAX	1000
#define HELPER_KILL_WAIT	3.0		/* stdin closed: exit or SIGKILL */
#define HELPER_BACKOFF_MAX	30.0
#define HELPER_QUICK_DEATH	10.0		/* died younger than this: back off */
#define HELPER_JSON_DEPTH	32		/* log= JSON nesting kept as JSON */

/* ------------------------------------------------------ helper_conf.c */

enum helper_fmt {
	HF_SRC,
	HF_SRCPORT,
	HF_DST,
	HF_PORT,
	HF_MYADDR,
	HF_MYPORT,
	HF_METHOD,
	HF_URI,
	HF_ACL,
	HF_DATA,
	HF_USER,	/* %un, %LOGIN: a Proxy-Authorization: Basic user */
	HF_CRED,	/* auth_param basic only: "user password" */
	HF_SNI		/* %ssl::>sni: the ClientHello's SNI (needs the hello) */
};

/* One external_acl_type line. */
struct helper_def {
	char			*hd_name;
	char			*hd_text;	/* the line after the name */
	double			 hd_ttl;
	double			 hd_negative_ttl;
	int			 hd_grace;	/* percent */
	size_t			 hd_cache;	/* entries */
	int			 hd_children_max;
	int			 hd_children_startup;
	int			 hd_children_idle;
	int			 hd_concurrency;
	int			 hd_queue_size;
	int			 hd_protocol25;	/* values are not escaped */
	double			 hd_timeout;	/* one request at a helper */
	double			 hd_log_wait;	/* a closed tunnel's line */
	enum helper_fmt		 hd_fmt[HELPER_FORMATS_MAX];
	size_t			 hd_nfmt;
	int			 hd_has_data;
	int			 hd_has_sni;	/* %ssl::>sni: acls wait for the hello */
	/* on_failure=: a lookup without an answer counts as OK (open) or
	 * ERR (closed, the default); set: written on the line, so that the
	 * log says when the fallback decided (the policy field) */
	int			 hd_fail_open;
	int			 hd_fail_set;
	/* auth_param basic (Squid's basic auth helper protocol): asked by
	 * proxy_auth acls only, never for the log line's lookups */
	int			 hd_auth;
	char			*hd_realm;
	size_t			 hd_lineno;	/* its (first auth_param) line */
	char			**hd_argv;	/* program and arguments */
	TAILQ_ENTRY(helper_def)	 hd_entry;
};

struct helper_conf {
	TAILQ_HEAD(, helper_def) hc_defs;
};

/* A deep copy of hd (list linkage not copied); NULL if out of memory. */
struct helper_def *helper_def_dup(const struct helper_def *);
void	 helper_def_free(struct helper_def *);
/* The name of auth_param basic's helper (no external_acl_type can have it). */
#define HELPER_AUTH_NAME	"auth_param basic"
/* auth_param basic's definition in cf, or NULL. */
const struct helper_def *helper_conf_auth(const struct conf *);
/* The request line's format code for f, as written in the conf. */
const char *helper_fmt_name(enum helper_fmt);

/* ----------------------------------------------------- helper_cache.c */

/* An answer, shared by the cache and everyone who asked. */
struct helper_answer {
	int			 ha_refs;
	enum helper_result	 ha_result;
	int			 ha_has_log;
	int			 ha_log_json;	/* ha_log is one JSON value */
	struct logpolicy	*ha_policy;	/* policy=, a JSON object, cut
						   down to its five members */
	char			 ha_log[];
};

struct helper_pool;
struct helper_child;
struct helper_entry;

/*
 * One request line on its way.  The cache makes it and says what to
 * send (hl_line) and where the answer goes (hl_done); the pool owns
 * the fields in between while it carries the request.
 */
struct helper_lookup {
	const char		*hl_line;	/* without channel ID or newline */
	size_t			 hl_linelen;
	/*
	 * The answer (OK or ERR, with the reply's notes in rp), or rp NULL
	 * and error the reason none came.  Called once, by the pool, from
	 * its own callbacks: nothing here may call back into a connection
	 * (see helper_ready_run()).
	 */
	void			(*hl_done)(struct helper_lookup *,
				    const struct helper_reply *rp,
				    const char *error);
	/* the pool's */
	struct helper_pool	*hl_pool;
	struct helper_child	*hl_child;	/* NULL while queued */
	size_t			 hl_slot;
	int			 hl_sends;
	int			 hl_bh;
	ev_tstamp		 hl_sent;
	TAILQ_ENTRY(helper_lookup) hl_entry;	/* on the pool's queue */
	/* the cache's */
	struct helper_entry	*hl_he;
	TAILQ_HEAD(, helper_wait) hl_waiters;
};

/* A cache entry, keyed by the request line without the channel ID. */
struct helper_entry {
	struct hnode		 he_node;
	char			*he_key;
	size_t			 he_keylen;
	struct helper_answer	*he_answer;	/* NULL until one arrives */
	ev_tstamp		 he_date;
	struct helper_lookup	*he_lookup;	/* a request on its way */
	TAILQ_ENTRY(helper_entry) he_lru;
};

struct helper_cache {
	struct htab		 hk_table;
	TAILQ_HEAD(, helper_entry) hk_lru;	/* oldest use first */
};

/*
 * Someone waiting for the answer to one request line: a log line or an
 * acl.  Owned by whoever waits; the cache only links it.
 */
struct helper_wait {
	struct helper_pool	*hw_pool;	/* reference held */
	struct helper_lookup	*hw_lookup;	/* while waiting */
	struct helper_answer	*hw_answer;	/* once answered (ref held) */
	const char		*hw_error;	/* done without an answer: why */
	int			 hw_done;
	void			(*hw_cb)(void *);	/* run once done */
	void			*hw_arg;
	int			 hw_queued;	/* on the ready list */
	int			 hw_hello;	/* acl waits: asked with the hello known */
	char			*hw_data;	/* acl waits: %DATA as given */
	ev_tstamp		 hw_deadline;	/* acl waits */
	TAILQ_ENTRY(helper_wait) hw_entry;	/* on the lookup */
	TAILQ_ENTRY(helper_wait) hw_ready;	/* on the ready list */
	TAILQ_ENTRY(helper_wait) hw_centry;	/* on the conn's acl list */
};

int	 helper_cache_init(struct helper_cache *);
/* Drop every entry; none may have a lookup on its way. */
void	 helper_cache_clear(struct helper_pool *);
/*
 * Start hw (zeroed but for hw_cb/hw_arg/hw_data) on pool hp for the
 * request line line[0..len).  A fresh cached answer completes it at
 * once (hw_done set, no callback); otherwise it joins the lookup on its
 * way for the same line, or starts one, and hw_cb(hw_arg) runs at the
 * end of the loop turn in which it completes.
 */
void	 helper_wait_start(struct helper_wait *, struct helper_pool *,
	    const char *, size_t);
/* Done without an answer: why says so ("timeout"); no callback. */
void	 helper_wait_fail(struct helper_wait *, const char *);
/* Leave (the lookup goes on for the cache) and drop every reference. */
void	 helper_wait_clear(struct helper_wait *);

/* ------------------------------------------------------ helper_pool.c */

enum helper_child_state {
	HC_RUNNING,
	HC_CLOSING,	/* stdin closed, waiting for the exit */
	HC_DEAD		/* failed, waiting to be reaped */
};

struct helper_child {
	struct helper_pool	*hc_pool;
	pid_t			 hc_pid;
	int			 hc_reaped;
	enum helper_child_state	 hc_state;
	int			 hc_in;		/* its stdin */
	int			 hc_out;	/* its stdout */
	int			 hc_err;	/* its stderr */
	ev_io			 hc_wio;
	ev_io			 hc_rio;
	ev_io			 hc_eio;
	ev_child		 hc_cw;		/* the default loop (workers 1) */
	ev_io			 hc_pidio;	/* another loop: its pidfd */
	int			 hc_pidfd;
	ev_timer		 hc_kill;
	ev_tstamp		 hc_started;
	struct buf		 hc_wbuf;	/* request lines not yet written */
	struct buf		 hc_rbuf;	/* a reply line being read */
	char			 hc_ebuf[HELPER_ERRLINE_MAX];
	size_t			 hc_elen;
	struct helper_lookup	**hc_slots;	/* by channel ID */
	size_t			 hc_nslots;
	size_t			 hc_inflight;
	size_t			 hc_hint;	/* where to look for a free slot */
	int			 hc_werrno;	/* a write failed */
	TAILQ_ENTRY(helper_child) hc_entry;
};

struct helper_pool_stats {
	uint64_t		 hs_lookups;
	uint64_t		 hs_hits;
	uint64_t		 hs_shared;	/* joined a request on its way */
	uint64_t		 hs_requests;	/* lines sent */
	uint64_t		 hs_ok;
	uint64_t		 hs_err;
	uint64_t		 hs_bh;
	uint64_t		 hs_queue_full;
	uint64_t		 hs_down;
	uint64_t		 hs_timeouts;	/* waiters that gave up */
	uint64_t		 hs_spawned;
	uint64_t		 hs_restarts;	/* spawned after a failure */
	uint64_t		 hs_malformed;
	uint64_t		 hs_deferred;	/* log lines that waited */
	double			 hs_wait_sum;	/* request sent to answer */
	double			 hs_wait_max;
};

/* The children and the answers of one external_acl_type definition. */
struct helper_pool {
	struct worker		*hp_worker;
	struct helper_def	*hp_def;	/* own copy */
	int			 hp_refs;	/* waiters */
	int			 hp_active;	/* in the running configuration */
	TAILQ_HEAD(, helper_child) hp_children;
	int			 hp_nrunning;
	TAILQ_HEAD(, helper_lookup) hp_queue;
	size_t			 hp_nqueued;
	size_t			 hp_nlookups;	/* queued or in flight */
	struct helper_cache	 hp_cache;
	int			 hp_deaths;	/* quick failures in a row */
	int			 hp_failed;	/* a restart is owed */
	ev_tstamp		 hp_spawn_after;
	ev_timer		 hp_timer;
	struct helper_pool_stats hp_st;
	TAILQ_ENTRY(helper_pool) hp_entry;
};

struct helper_probe;

/* A worker's pools, and the waiters to call back at the end of a turn. */
struct helper_pools {
	TAILQ_HEAD(, helper_pool) hr_active;	/* in configuration order */
	TAILQ_HEAD(, helper_pool) hr_retired;	/* finishing their work */
	TAILQ_HEAD(, helper_wait) hr_ready;	/* done, callback owed */
	TAILQ_HEAD(, helper_probe) hr_probes;	/* helper_conn.c: /readyz */
	struct buf		 hr_line;	/* request lines are built here */
};

/*
 * Hand a lookup to a child, start one if allowed, else queue it.  The
 * pool then calls hl_done exactly once.  Returns NULL, or why it cannot
 * be served ("helper_down", "queue_full"): then hl_done is not called
 * and the caller still owns hl.
 */
const char *helper_pool_submit(struct helper_pool *, struct helper_lookup *);
/* The running pool of that name, or NULL. */
struct helper_pool *helper_pool_find(struct worker *, const char *);
void	 helper_pool_ref(struct helper_pool *);
void	 helper_pool_unref(struct helper_pool *);

/* ------------------------------------------------------ helper_conn.c */

/* At exit, before the pools go: forget the readiness probes. */
void	 helper_probe_stop(struct helper_pools *);

#endif
