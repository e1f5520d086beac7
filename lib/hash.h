/* hash.h: one hash function (FNV-1a) and one chained hash table of intrusive nodes */
#ifndef HASH_H
#define HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a, 64 bits.  Not keyed: tables of what clients send stay bounded. */
uint64_t hash_bytes(const void *, size_t);

/*
 * A node lives inside the caller's struct (container_of() finds it); the
 * table only links nodes and never allocates or frees them.  The caller
 * computes each key's hash once and gives a matcher that compares the
 * key with a node's.
 */
struct hnode {
	struct hnode	*hn_next;
	uint64_t	 hn_hash;
};

struct htab {
	struct hnode	**ht_bucket;
	size_t		  ht_size;	/* a power of two, or 0 */
	size_t		  ht_count;
	size_t		  ht_scan;	/* htab_pop(): buckets before it are empty */
};

typedef int	(*htab_match_fn)(const struct hnode *, const void *key);

/* An empty table with room for about hint nodes; -1 if out of memory. */
int	 htab_init(struct htab *, size_t hint);

/* Give back the buckets.  Nodes still linked are the caller's to free. */
void	 htab_free(struct htab *);

/* The node whose key matches, or NULL. */
struct hnode *htab_find(const struct htab *, uint64_t hash, htab_match_fn,
	    const void *key);

/*
 * Link n under hash (the caller has checked that its key is new).  The
 * table doubles once it holds as many nodes as buckets; if that fails
 * the chains just grow longer.  Never fails after htab_init().
 */
void	 htab_insert(struct htab *, struct hnode *, uint64_t hash);

/* Unlink n, which must be in the table. */
void	 htab_remove(struct htab *, struct hnode *);

/* Unlink and return some node, or NULL when empty: for teardown. */
struct hnode *htab_pop(struct htab *);

#endif
