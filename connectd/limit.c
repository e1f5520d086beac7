/* limit.c: connection limits (total, per client IP) and the privilege drop */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <grp.h>
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
	struct limit_client	*lc;
	struct in6_addr		 key;
	uint64_t		 hash;

	if (w->w_clients == NULL) {
		if ((w->w_clients = calloc(1, sizeof(*w->w_clients))) == NULL)
			return 0;
		if (htab_init(&w->w_clients->lt_table, 1024) == -1) {
			free(w->w_clients);
			w->w_clients = NULL;
			return 0;
		}
	}
	(void)addr_key(ss, &key);
	hash = hash_bytes(&key, sizeof(key));
	if ((lc = limit_find(w->w_clients, &key, hash)) != NULL)
		return ++lc->lc_count;
	if ((lc = calloc(1, sizeof(*lc))) == NULL)
		return 0;
	lc->lc_addr = key;
	lc->lc_count = 1;
	htab_insert(&w->w_clients->lt_table, &lc->lc_node, hash);
	return 1;
}

/* One connection of ss's address fewer. */
void
limit_client_del(struct worker *w, const struct sockaddr_storage *ss)
{
	struct limit_client	*lc;
	struct in6_addr		 key;

	if (w->w_clients == NULL)
		return;
	(void)addr_key(ss, &key);
	lc = limit_find(w->w_clients, &key, hash_bytes(&key, sizeof(key)));
	if (lc != NULL && --lc->lc_count == 0) {
		htab_remove(&w->w_clients->lt_table, &lc->lc_node);
		free(lc);
	}
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
