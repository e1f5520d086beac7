/* index.c: pods by UID and addresses by IP: reuse, tombstones, hostNetwork, newest wins */
#include <sys/types.h>
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include "podmeta.h"
#include "util.h"

#define INDEX_HINT	1024		/* initial buckets of each table */

/* One indexed address: the pods that claim it, and the one that wins. */
struct addrent {
	struct in6_addr		 ae_addr;
	struct pod		*ae_owner;
	TAILQ_HEAD(, podaddr)	 ae_claims;
	struct hnode		 ae_hnode;	/* in ix_addrs, by ae_addr */
};

TAILQ_HEAD(podlist, pod);

struct pod_index {
	struct htab		 ix_pods;	/* struct pod by p_uid */
	struct htab		 ix_addrs;	/* struct addrent by ae_addr */
	struct podlist		 ix_live;
	struct podlist		 ix_tombs;	/* oldest first */
	size_t			 ix_nlive, ix_ntombs;
	unsigned int		 ix_gen;	/* of the current list */
	uint64_t		 ix_seq;	/* of the last upsert */
	double			 ix_grace;	/* tombstones last this long */
};

static int
index_pod_match(const struct hnode *n, const void *uid)
{
	return strcmp(container_of(n, struct pod, p_hnode)->p_uid, uid) == 0;
}

static int
index_addr_match(const struct hnode *n, const void *a)
{
	return memcmp(&container_of(n, struct addrent, ae_hnode)->ae_addr, a,
	    sizeof(struct in6_addr)) == 0;
}

static struct pod *
index_find_pod(const struct pod_index *ix, const char *uid)
{
	struct hnode	*n;

	n = htab_find(&ix->ix_pods, hash_bytes(uid, strlen(uid)),
	    index_pod_match, uid);
	return n != NULL ? container_of(n, struct pod, p_hnode) : NULL;
}

static struct addrent *
index_find_addr(const struct pod_index *ix, const struct in6_addr *a)
{
	struct hnode	*n;

	n = htab_find(&ix->ix_addrs, hash_bytes(a, sizeof(*a)),
	    index_addr_match, a);
	return n != NULL ? container_of(n, struct addrent, ae_hnode) : NULL;
}

struct pod_index *
index_new(double grace)
{
	struct pod_index	*ix;

	if ((ix = calloc(1, sizeof(*ix))) == NULL)
		return NULL;
	if (htab_init(&ix->ix_pods, INDEX_HINT) == -1 ||
	    htab_init(&ix->ix_addrs, INDEX_HINT) == -1) {
		htab_free(&ix->ix_pods);
		free(ix);
		return NULL;
	}
	TAILQ_INIT(&ix->ix_live);
	TAILQ_INIT(&ix->ix_tombs);
	ix->ix_grace = grace;
	return ix;
}

/*
 * Is a a better owner than b?  Live beats deleted; then a pod beats a
 * hostNetwork pod; then the newer start time; then the later update.
 */
static int
index_better(const struct pod *a, const struct pod *b)
{
	if (b == NULL)
		return 1;
	if (a->p_deleted != b->p_deleted)
		return !a->p_deleted;
	if (a->p_hostnet != b->p_hostnet)
		return !a->p_hostnet;
	if (a->p_start != b->p_start)
		return a->p_start > b->p_start;
	return a->p_seq > b->p_seq;
}

static void
index_reown(struct addrent *ae)
{
	struct podaddr	*pa;

	ae->ae_owner = NULL;
	TAILQ_FOREACH(pa, &ae->ae_claims, pa_entry)
		if (index_better(pa->pa_pod, ae->ae_owner))
			ae->ae_owner = pa->pa_pod;
}

static int
index_claim(struct pod_index *ix, struct pod *p)
{
	struct addrent	*ae;
	size_t		 i;

	for (i = 0; i < p->p_nips; i++) {
		if ((ae = index_find_addr(ix, &p->p_ips[i])) == NULL) {
			if ((ae = calloc(1, sizeof(*ae))) == NULL)
				return -1;
			ae->ae_addr = p->p_ips[i];
			TAILQ_INIT(&ae->ae_claims);
			htab_insert(&ix->ix_addrs, &ae->ae_hnode,
			    hash_bytes(&ae->ae_addr, sizeof(ae->ae_addr)));
		}
		p->p_claims[i].pa_pod = p;
		p->p_claims[i].pa_ent = ae;
		TAILQ_INSERT_TAIL(&ae->ae_claims, &p->p_claims[i], pa_entry);
		if (index_better(p, ae->ae_owner))
			ae->ae_owner = p;
	}
	return 0;
}

/* Drop p's claims; an address whose last claim goes is removed. */
static void
index_unclaim(struct pod_index *ix, struct pod *p)
{
	struct addrent	*ae;
	size_t		 i;

	for (i = 0; i < p->p_nips; i++) {
		if ((ae = p->p_claims[i].pa_ent) == NULL)
			continue;
		TAILQ_REMOVE(&ae->ae_claims, &p->p_claims[i], pa_entry);
		p->p_claims[i].pa_ent = NULL;
		if (!TAILQ_EMPTY(&ae->ae_claims)) {
			if (ae->ae_owner == p)
				index_reown(ae);
			continue;
		}
		htab_remove(&ix->ix_addrs, &ae->ae_hnode);
		free(ae);
	}
}

/* Take p out of every structure and free it. */
static void
index_remove(struct pod_index *ix, struct pod *p)
{
	index_unclaim(ix, p);
	htab_remove(&ix->ix_pods, &p->p_hnode);
	if (p->p_deleted) {
		TAILQ_REMOVE(&ix->ix_tombs, p, p_entry);
		ix->ix_ntombs--;
	} else {
		TAILQ_REMOVE(&ix->ix_live, p, p_entry);
		ix->ix_nlive--;
	}
	pod_free(p);
}

void
pod_free(struct pod *p)
{
	if (p == NULL)
		return;
	free(p->p_uid);
	free(p->p_namespace);
	free(p->p_name);
	free(p->p_node);
	free(p->p_tail);
	policy_spec_clear(&p->p_policy);
	free(p);
}

const struct pod *
index_pod(const struct pod_index *ix, const char *uid)
{
	return index_find_pod(ix, uid);
}

int
index_upsert(struct pod_index *ix, struct pod *p)
{
	struct pod	*old;

	if ((old = index_find_pod(ix, p->p_uid)) != NULL)
		index_remove(ix, old);
	if (p->p_finished || p->p_nips == 0) {
		pod_free(p);
		return 0;
	}
	p->p_seq = ++ix->ix_seq;
	p->p_gen = ix->ix_gen;
	htab_insert(&ix->ix_pods, &p->p_hnode,
	    hash_bytes(p->p_uid, strlen(p->p_uid)));
	TAILQ_INSERT_TAIL(&ix->ix_live, p, p_entry);
	ix->ix_nlive++;
	if (index_claim(ix, p) == -1) {
		index_remove(ix, p);
		return -1;
	}
	return 0;
}

/* p was deleted at now: a tombstone, or gone if there is no grace. */
static void
index_bury(struct pod_index *ix, struct pod *p, double now)
{
	size_t	i;

	if (ix->ix_grace <= 0) {
		index_remove(ix, p);
		return;
	}
	TAILQ_REMOVE(&ix->ix_live, p, p_entry);
	ix->ix_nlive--;
	p->p_deleted = 1;
	p->p_expire = now + ix->ix_grace;
	TAILQ_INSERT_TAIL(&ix->ix_tombs, p, p_entry);
	ix->ix_ntombs++;
	for (i = 0; i < p->p_nips; i++)
		if (p->p_claims[i].pa_ent != NULL)
			index_reown(p->p_claims[i].pa_ent);
}

void
index_delete(struct pod_index *ix, const char *uid, double now)
{
	struct pod	*p;

	if ((p = index_find_pod(ix, uid)) == NULL || p->p_deleted)
		return;
	index_bury(ix, p, now);
}

void
index_list_begin(struct pod_index *ix)
{
	ix->ix_gen++;
}

void
index_list_end(struct pod_index *ix, double now)
{
	struct pod	*p, *next;

	for (p = TAILQ_FIRST(&ix->ix_live); p != NULL; p = next) {
		next = TAILQ_NEXT(p, p_entry);
		if (p->p_gen != ix->ix_gen)
			index_bury(ix, p, now);
	}
}

const struct pod *
index_lookup(const struct pod_index *ix, const struct in6_addr *a)
{
	struct addrent	*ae;

	if ((ae = index_find_addr(ix, a)) == NULL)
		return NULL;
	return ae->ae_owner;
}

void
index_expire(struct pod_index *ix, double now)
{
	struct pod	*p;

	/* tombstones are queued in the order they expire */
	while ((p = TAILQ_FIRST(&ix->ix_tombs)) != NULL && p->p_expire <= now)
		index_remove(ix, p);
}

void
index_counts(const struct pod_index *ix, size_t *live, size_t *tombs,
    size_t *addrs)
{
	*live = ix->ix_nlive;
	*tombs = ix->ix_ntombs;
	*addrs = ix->ix_addrs.ht_count;
}

void
index_free(struct pod_index *ix)
{
	struct pod	*p;

	if (ix == NULL)
		return;
	while ((p = TAILQ_FIRST(&ix->ix_live)) != NULL)
		index_remove(ix, p);
	while ((p = TAILQ_FIRST(&ix->ix_tombs)) != NULL)
		index_remove(ix, p);
	htab_free(&ix->ix_pods);
	htab_free(&ix->ix_addrs);
	free(ix);
}
