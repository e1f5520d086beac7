/* helper.h: external ACL helpers inside helper*.c: definitions, pools of children, lookups, cache */
#ifndef HELPER_H
#define HELPER_H

#include "helperproto.h"

#define HELPER_REPLY_MAX	(64 * 1024)	/* a longer reply line is malformed */
#define HELPER_ERRLINE_MAX	1024		/* stderr lines are cut here */
#define HELPER_DEFER_MAX	8192		/* log lines waiting for answers */
#define HELPER_FORMATS_MAX	32
#define HELPER_CONCURRENCY_MAX	1000
#define HELPER_KILL_WAIT	3.0		/* stdin closed: exit or SIGKILL */
#define HELPER_BACKOFF_MAX	30.0
#define HELPER_QUICK_DEATH	10.0		/* died younger than this: back off */

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
	HF_DATA
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
	char			**hd_argv;	/* program and arguments */
	TAILQ_ENTRY(helper_def)	 hd_entry;
};

struct helper_conf {
	TAILQ_HEAD(, helper_def) hc_defs;
};

/* An answer, shared by the cache and everyone who asked. */
struct helper_answer {
	int			 ha_refs;
	enum helper_result	 ha_result;
	int			 ha_has_log;
	char			 ha_log[];
};

struct helper_lookup;

/* A cache entry, keyed by the request line without the channel ID. */
struct helper_entry {
	char			*he_key;
	size_t			 he_keylen;
	uint32_t		 he_hash;
	struct helper_answer	*he_answer;	/* NULL until one arrives */
	ev_tstamp		 he_date;
	struct helper_lookup	*he_lookup;	/* a request on its way */
	struct helper_entry	*he_next;	/* hash chain */
	TAILQ_ENTRY(helper_entry) he_lru;
};

struct helper_pool;
struct helper_child;
struct conn_helper;

/* Someone waiting for one entry: a log line or an acl. */
struct helper_waiter {
	struct conn_helper	*hw_ch;
	struct helper_pool	*hw_pool;	/* reference held */
	struct helper_lookup	*hw_lookup;	/* while waiting */
	struct helper_answer	*hw_answer;	/* once answered */
	const char		*hw_error;	/* no answer: why */
	int			 hw_done;
	int			 hw_acl;
	char			*hw_data;	/* acl waits: %DATA as given */
	ev_tstamp		 hw_deadline;	/* acl waits */
	TAILQ_ENTRY(helper_waiter) hw_entry;	/* on the lookup */
	TAILQ_ENTRY(helper_waiter) hw_centry;	/* on the conn's acl list */
};

/* One request line, sent to one child at a time. */
struct helper_lookup {
	struct helper_pool	*hl_pool;
	struct helper_entry	*hl_he;
	struct helper_child	*hl_child;	/* NULL while queued */
	size_t			 hl_slot;
	int			 hl_sends;
	int			 hl_bh;
	ev_tstamp		 hl_sent;
	TAILQ_HEAD(, helper_waiter) hl_waiters;
	TAILQ_ENTRY(helper_lookup) hl_entry;	/* on the pool's queue */
};

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
	ev_child		 hc_cw;
	ev_timer		 hc_kill;
	ev_tstamp		 hc_started;
	char			*hc_wbuf;
	size_t			 hc_wlen;
	size_t			 hc_wcap;
	char			*hc_rbuf;
	size_t			 hc_rlen;
	size_t			 hc_rcap;
	char			 hc_ebuf[HELPER_ERRLINE_MAX];
	size_t			 hc_elen;
	struct helper_lookup	**hc_slots;
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

struct helper_pool {
	struct helper_def	*hp_def;	/* own copy */
	int			 hp_refs;	/* waiters */
	int			 hp_active;	/* in the running configuration */
	TAILQ_HEAD(, helper_child) hp_children;
	int			 hp_nrunning;
	TAILQ_HEAD(, helper_lookup) hp_queue;
	size_t			 hp_nqueued;
	size_t			 hp_nlookups;	/* queued or in flight */
	struct helper_entry	**hp_buckets;
	size_t			 hp_nbuckets;
	size_t			 hp_nentries;
	TAILQ_HEAD(, helper_entry) hp_lru;
	int			 hp_deaths;	/* quick failures in a row */
	int			 hp_failed;	/* a restart is owed */
	ev_tstamp		 hp_spawn_after;
	ev_timer		 hp_timer;
	struct helper_pool_stats hp_st;
	TAILQ_ENTRY(helper_pool) hp_entry;
};

/* helper.c: called by helper_pool.c */
void	 helper_lookup_done(struct helper_lookup *, enum helper_result,
	    const char *, size_t, const char *);
void	 helper_ready_run(void);
void	 helper_pool_free(struct helper_pool *);

/* helper_pool.c */
struct helper_pool *helper_pool_new(const struct helper_def *);
void	 helper_pool_retire(struct helper_pool *);
void	 helper_pool_unref(struct helper_pool *);
const char *helper_pool_submit(struct helper_pool *, struct helper_lookup *);
void	 helper_pool_kill_all(struct helper_pool *);
int	 helper_pool_idle(const struct helper_pool *);
struct helper_def *helper_def_dup(const struct helper_def *);
void	 helper_def_free(struct helper_def *);

#endif
