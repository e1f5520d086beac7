/* ifaddr.c: this host's own addresses, for the to_self acl, kept current through netlink */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <errno.h>
#include <ifaddrs.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectd.h"

#define IFADDR_POLL	5.0	/* without netlink, look again this often */

/*
 * Every address of every interface, as sorted 16-byte keys (IPv4 as
 * ::ffff:a.b.c.d), so that a "never to this host" rule also covers the
 * addresses the host has beside loopback: a pod network gateway, a node
 * IP, an address added later.  getifaddrs(3) reads them; a netlink
 * socket says when they change, and they are read again.
 */
struct ifaddr_set {
	struct in6_addr	*is_addrs;
	size_t		 is_n;
	int		 is_nl;		/* netlink socket, or -1 */
	ev_io		 is_io;
	ev_timer	 is_poll;	/* when there is no netlink */
};

static int
ifaddr_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct in6_addr));
}

/* Read the addresses again; on failure the old list stays. */
static void
ifaddr_refresh(struct ifaddr_set *is)
{
	struct ifaddrs		*ifa, *i;
	struct in6_addr		*addrs;
	size_t			 n = 0, cap = 0;

	if (getifaddrs(&ifa) == -1) {
		log_warn("getifaddrs");
		return;
	}
	for (i = ifa; i != NULL; i = i->ifa_next)
		if (i->ifa_addr != NULL && (i->ifa_addr->sa_family == AF_INET ||
		    i->ifa_addr->sa_family == AF_INET6))
			cap++;
	if ((addrs = calloc(cap > 0 ? cap : 1, sizeof(*addrs))) == NULL) {
		freeifaddrs(ifa);
		log_warn("ifaddr: calloc");
		return;
	}
	for (i = ifa; i != NULL && n < cap; i = i->ifa_next)
		if (i->ifa_addr != NULL && addr_key((const struct
		    sockaddr_storage *)(void *)i->ifa_addr, &addrs[n]) == 0)
			n++;
	freeifaddrs(ifa);
	qsort(addrs, n, sizeof(*addrs), ifaddr_cmp);
	free(is->is_addrs);
	is->is_addrs = addrs;
	is->is_n = n;
	log_debug("this host has %zu addresses", n);
}

static void
ifaddr_netlink_cb(EV_P_ ev_io *io, int revents)
{
	struct ifaddr_set	*is = io->data;
	char			 buf[8192];
	ssize_t			 n;
	int			 changed = 0;

	/* what changed does not matter: read them all again, once */
	while ((n = recv(is->is_nl, buf, sizeof(buf), MSG_DONTWAIT)) > 0 ||
	    (n == -1 && (errno == EINTR || errno == ENOBUFS)))
		changed = 1;
	if (changed)
		ifaddr_refresh(is);
}

static void
ifaddr_poll_cb(EV_P_ ev_timer *t, int revents)
{
	ifaddr_refresh(t->data);
}

/* Start watching this host's addresses on w's loop; never fails. */
void
ifaddr_init(struct worker *w)
{
	struct ifaddr_set	*is;
	struct sockaddr_nl	 sa;

	if ((is = calloc(1, sizeof(*is))) == NULL)
		fatal("ifaddr: calloc");
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	sa.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
	is->is_nl = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    NETLINK_ROUTE);
	if (is->is_nl != -1 && bind(is->is_nl, (struct sockaddr *)&sa,
	    sizeof(sa)) == -1) {
		close(is->is_nl);
		is->is_nl = -1;
	}
	if (is->is_nl != -1) {
		ev_io_init(&is->is_io, ifaddr_netlink_cb, is->is_nl, EV_READ);
		is->is_io.data = is;
		ev_io_start(w->w_loop, &is->is_io);
	} else {
		log_warn("netlink: addresses of this host are read every "
		    "%.0f s instead", IFADDR_POLL);
		ev_timer_init(&is->is_poll, ifaddr_poll_cb, IFADDR_POLL,
		    IFADDR_POLL);
		is->is_poll.data = is;
		ev_timer_start(w->w_loop, &is->is_poll);
	}
	ifaddr_refresh(is);
	w->w_self = is;
}

void
ifaddr_free(struct worker *w)
{
	struct ifaddr_set	*is = w->w_self;

	if (is == NULL)
		return;
	if (is->is_nl != -1) {
		ev_io_stop(w->w_loop, &is->is_io);
		close(is->is_nl);
	} else
		ev_timer_stop(w->w_loop, &is->is_poll);
	free(is->is_addrs);
	free(is);
	w->w_self = NULL;
}

/* This host's addresses, sorted keys; *n gets how many. */
const struct in6_addr *
ifaddr_list(const struct worker *w, size_t *n)
{
	*n = w->w_self != NULL ? w->w_self->is_n : 0;
	return w->w_self != NULL ? w->w_self->is_addrs : NULL;
}
