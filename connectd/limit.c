/* limit.c: connection limits (total, per client IP) and the privilege drop */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectd.h"
#include "hash.h"

#define LIMIT_FD_RESERVE	64	/* logs, listeners, DNS, helpers */

/* the connections of one client address; IPv4 as ::ffff:a.b.c.d */
struct limit_client {
	struct hnode		 lc_node;
	struct in6_addr		 lc_addr;
	unsigned		 lc_count;
};

struct limit_table {
	struct htab		 lt_table;
};

/*
 * With workers, the kernel steers every connection of a client address
 * to one worker (listener.c's BPF program), so each worker's own table
 * is exact.  Without that steering the workers share one table, locked
 * at accept and at close only.
 */
static int		 limit_shared;
static struct limit_table *limit_shared_table;
static pthread_mutex_t	 limit_mtx = PTHREAD_MUTEX_INITIALIZER;

void
limit_share(void)
{
	limit_shared = 1;
}

static struct limit_table **
limit_table_of(struct worker *w)
{
	if (limit_shared) {
		pthread_mutex_lock(&limit_mtx);
		return &limit_shared_table;
	}
	return &w->w_clients;
}

static void
limit_table_done(void)
{
	if (limit_shared)
		pthread_mutex_unlock(&limit_mtx);
}

static int
limit_match(const struct hnode *n, const void *key)
{
	return memcmp(&container_of(n, struct limit_client, lc_node)->lc_addr,
	    key, sizeof(struct in6_addr)) == 0;
}

static struct limit_client *
limit_find(struct limit_table *lt, const struct in6_addr *key, uint64_t hash)
{
	struct hnode	*n;

	if ((n = htab_find(&lt->lt_table, hash, limit_match, key)) == NULL)
		return NULL;
	return container_of(n, struct limit_client, lc_node);
}

/*
 * Count one more connection of ss's address.  Returns how many it has,
 * this one included; 0 if that cannot be known (out of memory).
 */
unsigned
limit_client_add(struct worker *w, const struct sockaddr_storage *ss)
{
	struct limit_table	**ltp = limit_table_of(w);
	struct limit_client	*lc;
	struct in6_addr		 key;
	uint64_t		 hash;
	unsigned		 n = 0;

	if (*ltp == NULL) {
		if ((*ltp = calloc(1, sizeof(**ltp))) == NULL)
			goto done;
		if (htab_init(&(*ltp)->lt_table, 1024) == -1) {
			free(*ltp);
			*ltp = NULL;
			goto done;
		}
	}
	(void)addr_key(ss, &key);
	hash = hash_bytes(&key, sizeof(key));
	if ((lc = limit_find(*ltp, &key, hash)) != NULL) {
		n = ++lc->lc_count;
		goto done;
	}
	if ((lc = calloc(1, sizeof(*lc))) == NULL)
		goto done;
	lc->lc_addr = key;
	lc->lc_count = 1;
	htab_insert(&(*ltp)->lt_table, &lc->lc_node, hash);
	n = 1;
 done:
	limit_table_done();
	return n;
}

/* One connection of ss's address fewer. */
void
limit_client_del(struct worker *w, const struct sockaddr_storage *ss)
{
	struct limit_table	**ltp = limit_table_of(w);
	struct limit_client	*lc;
	struct in6_addr		 key;

	if (*ltp != NULL) {
		(void)addr_key(ss, &key);
		lc = limit_find(*ltp, &key, hash_bytes(&key, sizeof(key)));
		if (lc != NULL && --lc->lc_count == 0) {
			htab_remove(&(*ltp)->lt_table, &lc->lc_node);
			free(lc);
		}
	}
	limit_table_done();
}

void
limit_free(struct worker *w)
{
	struct hnode	*n;

	if (w->w_clients == NULL)
		return;
	while ((n = htab_pop(&w->w_clients->lt_table)) != NULL)
		free(container_of(n, struct limit_client, lc_node));
	htab_free(&w->w_clients->lt_table);
	free(w->w_clients);
	w->w_clients = NULL;
}

/* max_connections 0: what the fd limit allows, two fds per tunnel */
unsigned
limit_auto_max(void)
{
	struct rlimit	 rl;
	rlim_t		 n;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return 1000000;
	n = rl.rlim_cur > 2 * LIMIT_FD_RESERVE ?
	    rl.rlim_cur - LIMIT_FD_RESERVE : rl.rlim_cur / 2;
	n /= 2;
	return n < 1 ? 1 : n > 1000000 ? 1000000 : (unsigned)n;
}

/*
 * Started as root with cache_effective_user set: become that user, with
 * its groups, as Squid does.  Not root: nothing to do.
 */
int
limit_drop_privileges(const struct conf *cf, char *err, size_t errlen)
{
	struct passwd	*pw;

	if (geteuid() != 0)
		return 0;
	if (cf->c_effective_user == NULL) {
		log_warnx("running as root: set cache_effective_user to drop "
		    "privileges");
		return 0;
	}
	errno = 0;
	if ((pw = getpwnam(cf->c_effective_user)) == NULL) {
		snprintf(err, errlen, "cache_effective_user %s: %s",
		    cf->c_effective_user, errno ? strerror(errno) :
		    "no such user");
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_warnx("cache_effective_user %s is root: privileges are "
		    "not dropped", cf->c_effective_user);
		return 0;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) == -1 ||
	    setgid(pw->pw_gid) == -1 || setuid(pw->pw_uid) == -1)
		goto fail;
	if (setuid(0) != -1) {
		errno = EPERM;
		goto fail;
	}
	log_info("running as %s (uid %lu, gid %lu)", pw->pw_name,
	    (unsigned long)pw->pw_uid, (unsigned long)pw->pw_gid);
	return 0;
 fail:
	snprintf(err, errlen, "cannot become %s: %s", cf->c_effective_user,
	    strerror(errno));
	return -1;
}
