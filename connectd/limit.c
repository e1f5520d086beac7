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

#define LIMIT_BUCKETS		4096	/* a power of two */
#define LIMIT_FD_RESERVE	64	/* logs, listeners, DNS, helpers */

struct limit_client {
	uint8_t			 lc_addr[16];
	unsigned		 lc_count;
	struct limit_client	*lc_next;
};

struct limit_table {
	struct limit_client	*lt_buckets[LIMIT_BUCKETS];
};

/* IPv4 as ::ffff:a.b.c.d, so a dual-stack listener counts it once */
static void
limit_key(const struct sockaddr_storage *ss, uint8_t *key)
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
}

static size_t
limit_hash(const uint8_t *key)
{
	uint32_t	 h = 2166136261U;
	int		 i;

	for (i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619U;
	return h & (LIMIT_BUCKETS - 1);
}

/* The client's number of connections, this one included; 0 if unknown. */
unsigned
limit_client_add(struct worker *w, const struct sockaddr_storage *ss)
{
	struct limit_client	*lc;
	uint8_t			 key[16];
	size_t			 b;

	if (w->w_clients == NULL &&
	    (w->w_clients = calloc(1, sizeof(*w->w_clients))) == NULL)
		return 0;
	limit_key(ss, key);
	b = limit_hash(key);
	for (lc = w->w_clients->lt_buckets[b]; lc != NULL; lc = lc->lc_next)
		if (memcmp(lc->lc_addr, key, 16) == 0)
			return ++lc->lc_count;
	if ((lc = calloc(1, sizeof(*lc))) == NULL)
		return 0;
	memcpy(lc->lc_addr, key, 16);
	lc->lc_count = 1;
	lc->lc_next = w->w_clients->lt_buckets[b];
	w->w_clients->lt_buckets[b] = lc;
	return 1;
}

void
limit_client_del(struct worker *w, const struct sockaddr_storage *ss)
{
	struct limit_client	*lc, **prev;
	uint8_t			 key[16];

	if (w->w_clients == NULL)
		return;
	limit_key(ss, key);
	prev = &w->w_clients->lt_buckets[limit_hash(key)];
	for (lc = *prev; lc != NULL; prev = &lc->lc_next, lc = lc->lc_next) {
		if (memcmp(lc->lc_addr, key, 16) != 0)
			continue;
		if (--lc->lc_count == 0) {
			*prev = lc->lc_next;
			free(lc);
		}
		return;
	}
}

void
limit_free(struct worker *w)
{
	struct limit_client	*lc;
	size_t			 i;

	if (w->w_clients == NULL)
		return;
	for (i = 0; i < LIMIT_BUCKETS; i++)
		while ((lc = w->w_clients->lt_buckets[i]) != NULL) {
			w->w_clients->lt_buckets[i] = lc->lc_next;
			free(lc);
		}
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
