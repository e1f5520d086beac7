/* index.c: pods by UID and addresses by IP: reuse, tombstones, hostNetwork, newest wins */
#include <sys/types.h>
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include "podmeta.h"

struct htab {
	void		**ht_bucket;
	size_t		  ht_size;	/* a power of two */
	size_t		  ht_count;
};

static struct htab	 index_pods;	/* struct pod by p_uid */
static struct htab	 index_addrs;	/* struct addrent by ae_addr */
static struct podlist	 index_live = TAILQ_HEAD_INITIALIZER(index_live);
static struct podlist	 index_tombs = TAILQ_HEAD_INITIALIZER(index_tombs);
static size_t		 index_nlive, index_ntombs;
static unsigned int	 index_gen;
static uint64_t		 index_seq;

static uint64_t
index_hash(const void *buf, size_t len)
{
	const unsigned char	*p = buf;
	uint64_t		 h = 0xcbf29ce484222325ULL;

	while (len-- > 0)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

static uint64_t
index_pod_hash(const struct pod *p)
{
	return index_hash(p->p_uid, strlen(p->p_uid));
}

static uint64_t
index_addr_hash(const struct addrent *ae)
{
	return index_hash(&ae->ae_addr, sizeof(ae->ae_addr));
}

void
index_init(void)
{
	index_pods.ht_size = index_addrs.ht_size = 1024;
	index_pods.ht_bucket = calloc(1024, sizeof(void *));
	index_addrs.ht_bucket = calloc(1024, sizeof(void *));
	if (index_pods.ht_bucket == NULL || index_addrs.ht_bucket == NULL)
		fatal("calloc");
}

/* Double a table once it holds as many entries as buckets. */
static void
index_grow_pods(void)
{
	struct pod	**nb, *p, *next;
	size_t		  i, nsize = index_pods.ht_size * 2;

	if (index_pods.ht_count < index_pods.ht_size ||
	    (nb = calloc(nsize, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < index_pods.ht_size; i++) {
		for (p = index_pods.ht_bucket[i]; p != NULL; p = next) {
			next = p->p_hnext;
			p->p_hnext = nb[index_pod_hash(p) & (nsize - 1)];
			nb[index_pod_hash(p) & (nsize - 1)] = p;
		}
	}
	free(index_pods.ht_bucket);
	index_pods.ht_bucket = (void **)nb;
	index_pods.ht_size = nsize;
}

static void
index_grow_addrs(void)
{
	struct addrent	**nb, *ae, *next;
	size_t		  i, nsize = index_addrs.ht_size * 2;

	if (index_addrs.ht_count < index_addrs.ht_size ||
	    (nb = calloc(nsize, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < index_addrs.ht_size; i++) {
		for (ae = index_addrs.ht_bucket[i]; ae != NULL; ae = next) {
			next = ae->ae_hnext;
			ae->ae_hnext = nb[index_addr_hash(ae) & (nsize - 1)];
			nb[index_addr_hash(ae) & (nsize - 1)] = ae;
		}
	}
	free(index_addrs.ht_bucket);
	index_addrs.ht_bucket = (void **)nb;
	index_addrs.ht_size = nsize;
}

static struct pod **
index_pod_slot(const char *uid)
{
	struct pod	**pp;

	pp = (struct pod **)&index_pods.ht_bucket[index_hash(uid,
	    strlen(uid)) & (index_pods.ht_size - 1)];
	for (; *pp != NULL; pp = &(*pp)->p_hnext)
		if (strcmp((*pp)->p_uid, uid) == 0)
			break;
	return pp;
}

static struct addrent **
index_addr_slot(const struct in6_addr *a)
{
	struct addrent	**pp;

	pp = (struct addrent **)&index_addrs.ht_bucket[index_hash(a,
	    sizeof(*a)) & (index_addrs.ht_size - 1)];
	for (; *pp != NULL; pp = &(*pp)->ae_hnext)
		if (memcmp(&(*pp)->ae_addr, a, sizeof(*a)) == 0)
			break;
	return pp;
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
index_claim(struct pod *p)
{
	struct addrent	**slot, *ae;
	size_t		  i;

	for (i = 0; i < p->p_nips; i++) {
		slot = index_addr_slot(&p->p_ips[i]);
		if ((ae = *slot) == NULL) {
			if ((ae = calloc(1, sizeof(*ae))) == NULL)
				return -1;
			ae->ae_addr = p->p_ips[i];
			TAILQ_INIT(&ae->ae_claims);
			*slot = ae;
			index_addrs.ht_count++;
		}
		p->p_claims[i].pa_pod = p;
		p->p_claims[i].pa_ent = ae;
		TAILQ_INSERT_TAIL(&ae->ae_claims, &p->p_claims[i], pa_entry);
		if (index_better(p, ae->ae_owner))
			ae->ae_owner = p;
	}
	index_grow_addrs();
	return 0;
}

/* Drop p's claims; an address whose last claim goes is removed. */
static void
index_unclaim(struct pod *p)
{
	struct addrent	**slot, *ae;
	size_t		  i;

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
		slot = index_addr_slot(&ae->ae_addr);
		*slot = ae->ae_hnext;
		index_addrs.ht_count--;
		free(ae);
	}
}

/* Take p out of every structure and free it. */
static void
index_remove(struct pod *p)
{
	struct pod	**slot;

	index_unclaim(p);
	slot = index_pod_slot(p->p_uid);
	if (*slot == p) {
		*slot = p->p_hnext;
		index_pods.ht_count--;
	}
	if (p->p_deleted) {
		TAILQ_REMOVE(&index_tombs, p, p_entry);
		index_ntombs--;
	} else {
		TAILQ_REMOVE(&index_live, p, p_entry);
		index_nlive--;
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
	free(p);
}

/*
 * Add or replace a pod (ownership passes to the index).  A finished pod,
 * or one without an address, only removes an earlier version.
 */
int
index_upsert(struct pod *p)
{
	struct pod	**slot, *old;

	if ((old = *index_pod_slot(p->p_uid)) != NULL)
		index_remove(old);
	if (p->p_finished || p->p_nips == 0) {
		pod_free(p);
		return 0;
	}
	p->p_seq = ++index_seq;
	p->p_gen = index_gen;
	slot = index_pod_slot(p->p_uid);
	p->p_hnext = NULL;
	*slot = p;
	index_pods.ht_count++;
	TAILQ_INSERT_TAIL(&index_live, p, p_entry);
	index_nlive++;
	if (index_claim(p) == -1) {
		index_remove(p);
		return -1;
	}
	index_grow_pods();
	return 0;
}

static void
index_bury(struct pod *p, double now)
{
	size_t	i;

	TAILQ_REMOVE(&index_live, p, p_entry);
	index_nlive--;
	p->p_deleted = 1;
	p->p_expire = now + conf.pc_delete_grace;
	TAILQ_INSERT_TAIL(&index_tombs, p, p_entry);
	index_ntombs++;
	for (i = 0; i < p->p_nips; i++)
		if (p->p_claims[i].pa_ent != NULL)
			index_reown(p->p_claims[i].pa_ent);
}

/* A deleted pod stays as a tombstone for --delete-grace. */
void
index_delete(const char *uid)
{
	struct pod	*p;

	if ((p = *index_pod_slot(uid)) == NULL || p->p_deleted)
		return;
	if (conf.pc_delete_grace <= 0) {
		index_remove(p);
		return;
	}
	index_bury(p, ev_now(loop));
}

void
index_list_begin(void)
{
	index_gen++;
}

/* A complete list: live pods it did not have were deleted meanwhile. */
void
index_list_end(void)
{
	struct pod	*p, *next;
	double		 now = ev_now(loop);

	for (p = TAILQ_FIRST(&index_live); p != NULL; p = next) {
		next = TAILQ_NEXT(p, p_entry);
		if (p->p_gen == index_gen)
			continue;
		if (conf.pc_delete_grace <= 0)
			index_remove(p);
		else
			index_bury(p, now);
	}
}

const struct pod *
index_lookup(const struct in6_addr *a)
{
	struct addrent	*ae;

	if ((ae = *index_addr_slot(a)) == NULL)
		return NULL;
	return ae->ae_owner;
}

void
index_expire(double now)
{
	struct pod	*p;

	while ((p = TAILQ_FIRST(&index_tombs)) != NULL && p->p_expire <= now)
		index_remove(p);
}

void
index_counts(size_t *live, size_t *tombs, size_t *addrs)
{
	*live = index_nlive;
	*tombs = index_ntombs;
	*addrs = index_addrs.ht_count;
}

void
index_clear(void)
{
	struct pod	*p;

	while ((p = TAILQ_FIRST(&index_live)) != NULL)
		index_remove(p);
	while ((p = TAILQ_FIRST(&index_tombs)) != NULL)
		index_remove(p);
	free(index_pods.ht_bucket);
	free(index_addrs.ht_bucket);
	memset(&index_pods, 0, sizeof(index_pods));
	memset(&index_addrs, 0, sizeof(index_addrs));
}
