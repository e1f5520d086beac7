/* helper_cache.c: helper answers by request line: ttl, grace, LRU bound, lookups and their waiters */
#include <stdlib.h>
#include <string.h>

#include "connectd.h"
#include "helper.h"
#include "jsonutil.h"

static void	helper_lookup_done(struct helper_lookup *,
		    const struct helper_reply *, const char *);

/* ---------------------------------------------------------------- answers */

static void
helper_answer_unref(struct helper_answer *ha)
{
	if (ha != NULL && --ha->ha_refs == 0) {
		free(ha->ha_policy);
		free(ha);
	}
}

static struct helper_answer *
helper_answer_ref(struct helper_answer *ha)
{
	ha->ha_refs++;
	return ha;
}

/*
 * A policy= value (issue 15): one JSON object, of which only the five
 * members the line has are kept, a string each, anything else null;
 * other keys are dropped.  NULL if it is not an object (or out of
 * memory): then the answer has no policy.  Parsed once here, so that no
 * line pays for it and every line gets the same shape.
 */
static struct logpolicy *
helper_policy_parse(const char *s, size_t len)
{
	const char	*v[LP_NMEMBERS];
	size_t		 vlen[LP_NMEMBERS];
	struct logpolicy *p = NULL;
	json_t		*root, *m;
	int		 i;

	/* the depth bound first: jansson's parser recurses */
	if (!json_valid(s, len, HELPER_JSON_DEPTH) ||
	    (root = json_loadb(s, len, 0, NULL)) == NULL)
		return NULL;
	if (json_is_object(root)) {
		for (i = 0; i < LP_NMEMBERS; i++) {
			m = json_object_get(root, logpolicy_name(i));
			v[i] = json_is_string(m) ? json_string_value(m) : NULL;
			vlen[i] = v[i] != NULL ? json_string_length(m) : 0;
		}
		p = logpolicy_new(v, vlen);
	}
	json_decref(root);
	return p;
}

/*
 * A new answer from the reply's notes.  A log= value that is one JSON
 * value (checked once, here, with jansson) goes on every line as JSON,
 * made one line; policy= is kept normalized (helper_policy_parse()).
 */
static struct helper_answer *
helper_answer_new(const struct helper_reply *rp)
{
	struct helper_answer	*ha;
	const struct helper_kv	*log, *policy;
	size_t			 len;

	log = helper_reply_get(rp, "log");
	len = log != NULL ? log->kv_valuelen : 0;
	if ((ha = malloc(sizeof(*ha) + len + 1)) == NULL)
		return NULL;
	ha->ha_refs = 1;
	ha->ha_result = rp->rp_result;
	ha->ha_has_log = log != NULL;
	ha->ha_log_json = 0;
	ha->ha_policy = NULL;
	if (log != NULL)
		memcpy(ha->ha_log, log->kv_value, len);
	ha->ha_log[len] = '\0';
	if (log != NULL)
		ha->ha_log_json = json_oneline(ha->ha_log, len,
		    HELPER_JSON_DEPTH);
	if ((policy = helper_reply_get(rp, "policy")) != NULL)
		ha->ha_policy = helper_policy_parse(policy->kv_value,
		    policy->kv_valuelen);
	return ha;
}

/* ------------------------------------------------------------------ cache */

int
helper_cache_init(struct helper_cache *hk)
{
	TAILQ_INIT(&hk->hk_lru);
	return htab_init(&hk->hk_table, 64);
}

struct helper_key {
	const char	*k_line;
	size_t		 k_len;
};

static int
helper_entry_match(const struct hnode *n, const void *arg)
{
	const struct helper_entry	*he;
	const struct helper_key		*k = arg;

	he = container_of(n, struct helper_entry, he_node);
	return he->he_keylen == k->k_len &&
	    memcmp(he->he_key, k->k_line, k->k_len) == 0;
}

static void
helper_entry_free(struct helper_cache *hk, struct helper_entry *he)
{
	htab_remove(&hk->hk_table, &he->he_node);
	TAILQ_REMOVE(&hk->hk_lru, he, he_lru);
	helper_answer_unref(he->he_answer);
	/* auth_param basic's keys hold a password: no copy left behind */
	explicit_bzero(he->he_key, he->he_keylen);
	free(he->he_key);
	free(he);
}

void
helper_cache_clear(struct helper_pool *hp)
{
	struct helper_cache	*hk = &hp->hp_cache;
	struct helper_entry	*he;

	while ((he = TAILQ_FIRST(&hk->hk_lru)) != NULL)
		helper_entry_free(hk, he);
	htab_free(&hk->hk_table);
}

/* A new entry; the oldest ones go first, but not those with a lookup. */
static struct helper_entry *
helper_entry_new(struct helper_pool *hp, const char *line, size_t len,
    uint64_t hash)
{
	struct helper_cache	*hk = &hp->hp_cache;
	struct helper_entry	*he, *next;
	size_t			 max = hp->hp_def->hd_cache;

	for (he = TAILQ_FIRST(&hk->hk_lru); he != NULL && max > 0 &&
	    hk->hk_table.ht_count >= max; he = next) {
		next = TAILQ_NEXT(he, he_lru);
		if (he->he_lookup == NULL)
			helper_entry_free(hk, he);
	}
	if ((he = calloc(1, sizeof(*he))) == NULL)
		return NULL;
	if ((he->he_key = malloc(len + 1)) == NULL) {
		free(he);
		return NULL;
	}
	memcpy(he->he_key, line, len);
	he->he_key[len] = '\0';
	he->he_keylen = len;
	htab_insert(&hk->hk_table, &he->he_node, hash);
	TAILQ_INSERT_TAIL(&hk->hk_lru, he, he_lru);
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

/* grace: past (100 - grace)% of its ttl, an answer is refreshed early */
static int
helper_entry_stale(const struct helper_pool *hp,
    const struct helper_entry *he, ev_tstamp now)
{
	return he->he_date + helper_entry_ttl(hp, he) *
	    (100 - hp->hp_def->hd_grace) / 100. <= now;
}

/* ---------------------------------------------------------------- lookups */

static struct helper_lookup *
helper_lookup_new(struct helper_entry *he)
{
	struct helper_lookup	*hl;

	if ((hl = calloc(1, sizeof(*hl))) == NULL)
		return NULL;
	hl->hl_line = he->he_key;
	hl->hl_linelen = he->he_keylen;
	hl->hl_done = helper_lookup_done;
	hl->hl_he = he;
	TAILQ_INIT(&hl->hl_waiters);
	he->he_lookup = hl;
	return hl;
}

/* The pool would not take it: the entry goes unless it has an answer. */
static void
helper_lookup_abort(struct helper_pool *hp, struct helper_lookup *hl)
{
	struct helper_entry	*he = hl->hl_he;

	he->he_lookup = NULL;
	if (he->he_answer == NULL)
		helper_entry_free(&hp->hp_cache, he);
	free(hl);
}

/* A lookup for he, sent; NULL (and he gone if unanswered) if it cannot be. */
static struct helper_lookup *
helper_lookup_send(struct helper_pool *hp, struct helper_entry *he,
    const char **why)
{
	struct helper_lookup	*hl;

	*why = "helper_down";
	if ((hl = helper_lookup_new(he)) == NULL) {
		if (he->he_answer == NULL)
			helper_entry_free(&hp->hp_cache, he);
		return NULL;
	}
	if ((*why = helper_pool_submit(hp, hl)) != NULL) {
		helper_lookup_abort(hp, hl);
		return NULL;
	}
	return hl;
}

/* Queue a finished waiter for its callback at the end of the loop turn. */
static void
helper_wait_ready(struct helper_wait *hw)
{
	struct helper_pools	*hr = hw->hw_pool->hp_worker->w_helpers;

	if (hw->hw_cb == NULL || hw->hw_queued)
		return;
	hw->hw_queued = 1;
	TAILQ_INSERT_TAIL(&hr->hr_ready, hw, hw_ready);
}

/*
 * The pool's one completion callback: the cache learns OK and ERR (a
 * failure keeps an older answer), and every waiter gets what came.
 * Nothing here calls back into a connection: helper_ready_run() does
 * that at the end of the loop turn, once the pool is out of the way.
 */
static void
helper_lookup_done(struct helper_lookup *hl, const struct helper_reply *rp,
    const char *error)
{
	struct helper_pool	*hp = hl->hl_pool;
	struct helper_entry	*he = hl->hl_he;
	struct helper_answer	*ha = NULL;
	struct helper_wait	*hw;

	if (rp == NULL && error == NULL)
		error = "helper_down";
	if (error == NULL && (ha = helper_answer_new(rp)) == NULL)
		error = "helper_down";
	he->he_lookup = NULL;
	if (ha != NULL) {
		helper_answer_unref(he->he_answer);
		he->he_answer = helper_answer_ref(ha);
		he->he_date = ev_now(hp->hp_worker->w_loop);
	}
	while ((hw = TAILQ_FIRST(&hl->hl_waiters)) != NULL) {
		TAILQ_REMOVE(&hl->hl_waiters, hw, hw_entry);
		hw->hw_lookup = NULL;
		hw->hw_done = 1;
		if (ha != NULL)
			hw->hw_answer = helper_answer_ref(ha);
		else
			hw->hw_error = error;
		helper_wait_ready(hw);
	}
	if (he->he_answer == NULL)
		helper_entry_free(&hp->hp_cache, he);
	helper_answer_unref(ha);
	free(hl);
}

/* ---------------------------------------------------------------- waiters */

void
helper_wait_start(struct helper_wait *hw, struct helper_pool *hp,
    const char *line, size_t len)
{
	struct helper_key	 key = { line, len };
	struct helper_entry	*he = NULL;
	struct helper_lookup	*hl;
	struct hnode		*n;
	ev_tstamp		 now = ev_now(hp->hp_worker->w_loop);
	const char		*why;
	uint64_t		 hash;

	hw->hw_pool = hp;
	helper_pool_ref(hp);
	hp->hp_st.hs_lookups++;
	hash = hash_bytes(line, len);
	if ((n = htab_find(&hp->hp_cache.hk_table, hash, helper_entry_match,
	    &key)) != NULL)
		he = container_of(n, struct helper_entry, he_node);
	if (he != NULL && he->he_answer != NULL &&
	    !helper_entry_expired(hp, he, now)) {
		hp->hp_st.hs_hits++;
		hw->hw_done = 1;
		hw->hw_answer = helper_answer_ref(he->he_answer);
		TAILQ_REMOVE(&hp->hp_cache.hk_lru, he, he_lru);
		TAILQ_INSERT_TAIL(&hp->hp_cache.hk_lru, he, he_lru);
		/* grace: refresh in the background, nobody waits for it */
		if (he->he_lookup == NULL && helper_entry_stale(hp, he, now))
			(void)helper_lookup_send(hp, he, &why);
		return;
	}
	if (he != NULL && he->he_lookup != NULL) {
		hp->hp_st.hs_shared++;
		hw->hw_lookup = he->he_lookup;
		TAILQ_INSERT_TAIL(&he->he_lookup->hl_waiters, hw, hw_entry);
		return;
	}
	if (he == NULL && (he = helper_entry_new(hp, line, len, hash)) ==
	    NULL) {
		helper_wait_fail(hw, "helper_down");
		return;
	}
	if ((hl = helper_lookup_send(hp, he, &why)) == NULL) {
		helper_wait_fail(hw, why);
		return;
	}
	hw->hw_lookup = hl;
	TAILQ_INSERT_TAIL(&hl->hl_waiters, hw, hw_entry);
}

void
helper_wait_fail(struct helper_wait *hw, const char *why)
{
	if (hw->hw_done)
		return;
	if (hw->hw_lookup != NULL) {
		TAILQ_REMOVE(&hw->hw_lookup->hl_waiters, hw, hw_entry);
		hw->hw_lookup = NULL;
	}
	hw->hw_done = 1;
	hw->hw_error = why;
	if (hw->hw_pool != NULL && strcmp(why, "timeout") == 0)
		hw->hw_pool->hp_st.hs_timeouts++;
}

void
helper_wait_clear(struct helper_wait *hw)
{
	if (hw->hw_lookup != NULL) {
		TAILQ_REMOVE(&hw->hw_lookup->hl_waiters, hw, hw_entry);
		hw->hw_lookup = NULL;
	}
	if (hw->hw_queued) {
		TAILQ_REMOVE(&hw->hw_pool->hp_worker->w_helpers->hr_ready, hw,
		    hw_ready);
		hw->hw_queued = 0;
	}
	helper_answer_unref(hw->hw_answer);
	hw->hw_answer = NULL;
	if (hw->hw_pool != NULL)
		helper_pool_unref(hw->hw_pool);
	hw->hw_pool = NULL;
	if (hw->hw_data != NULL)
		explicit_bzero(hw->hw_data, strlen(hw->hw_data));
	free(hw->hw_data);
	hw->hw_data = NULL;
}

/*
 * Called at the end of every loop turn: the waiters answered during it
 * get their callbacks now that no pool callback is on the stack.  A
 * callback may start or clear other waiters.
 */
void
helper_ready_run(struct worker *w)
{
	struct helper_pools	*hr = w->w_helpers;
	struct helper_wait	*hw;

	if (hr == NULL)
		return;
	while ((hw = TAILQ_FIRST(&hr->hr_ready)) != NULL) {
		TAILQ_REMOVE(&hr->hr_ready, hw, hw_ready);
		hw->hw_queued = 0;
		hw->hw_cb(hw->hw_arg);
	}
}
