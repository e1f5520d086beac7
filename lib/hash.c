/* hash.c: one hash function (FNV-1a) and one chained hash table of intrusive nodes */
#include <stdlib.h>

#include "hash.h"

#define HTAB_MIN	16

uint64_t
hash_bytes(const void *buf, size_t len)
{
	const unsigned char	*p = buf;
	uint64_t		 h = 0xcbf29ce484222325ULL;

	while (len-- > 0)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

int
htab_init(struct htab *t, size_t hint)
{
	size_t	 size = HTAB_MIN;

	while (size < hint && size < ((size_t)1 << 30))
		size *= 2;
	t->ht_count = t->ht_scan = 0;
	if ((t->ht_bucket = calloc(size, sizeof(*t->ht_bucket))) == NULL) {
		t->ht_size = 0;
		return -1;
	}
	t->ht_size = size;
	return 0;
}

void
htab_free(struct htab *t)
{
	free(t->ht_bucket);
	t->ht_bucket = NULL;
	t->ht_size = t->ht_count = t->ht_scan = 0;
}

struct hnode *
htab_find(const struct htab *t, uint64_t hash, htab_match_fn match,
    const void *key)
{
	struct hnode	*n;

	if (t->ht_size == 0)
		return NULL;
	for (n = t->ht_bucket[hash & (t->ht_size - 1)]; n != NULL;
	    n = n->hn_next)
		if (n->hn_hash == hash && match(n, key))
			return n;
	return NULL;
}

static void
htab_grow(struct htab *t)
{
	struct hnode	**nb, *n, *next;
	size_t		  i, size = t->ht_size * 2;

	if (size == 0 || (nb = calloc(size, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < t->ht_size; i++)
		for (n = t->ht_bucket[i]; n != NULL; n = next) {
			next = n->hn_next;
			n->hn_next = nb[n->hn_hash & (size - 1)];
			nb[n->hn_hash & (size - 1)] = n;
		}
	free(t->ht_bucket);
	t->ht_bucket = nb;
	t->ht_size = size;
	t->ht_scan = 0;
}

void
htab_insert(struct htab *t, struct hnode *n, uint64_t hash)
{
	struct hnode	**slot;

	if (t->ht_count >= t->ht_size)
		htab_grow(t);
	n->hn_hash = hash;
	t->ht_scan = 0;
	slot = &t->ht_bucket[hash & (t->ht_size - 1)];
	n->hn_next = *slot;
	*slot = n;
	t->ht_count++;
}

void
htab_remove(struct htab *t, struct hnode *n)
{
	struct hnode	**pp;

	for (pp = &t->ht_bucket[n->hn_hash & (t->ht_size - 1)]; *pp != NULL;
	    pp = &(*pp)->hn_next)
		if (*pp == n) {
			*pp = n->hn_next;
			n->hn_next = NULL;
			t->ht_count--;
			return;
		}
}

struct hnode *
htab_pop(struct htab *t)
{
	struct hnode	*n;
	size_t		 i;

	if (t->ht_count == 0)
		return NULL;
	for (i = t->ht_scan; i < t->ht_size; i++)
		if ((n = t->ht_bucket[i]) != NULL) {
			t->ht_scan = i;
			t->ht_bucket[i] = n->hn_next;
			n->hn_next = NULL;
			t->ht_count--;
			return n;
		}
	return NULL;
}
