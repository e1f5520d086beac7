/* resolve.c: asynchronous name resolution with c-ares on the worker's loop */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>

#include "connectd.h"

#define RESOLVE_MAX_ADDRS	16

struct resolve_sock {
	ev_io			 rs_io;
	struct resolver		*rs_resolver;
	TAILQ_ENTRY(resolve_sock) rs_entry;
};

struct resolver {
	ares_channel		 r_channel;
	int			 r_ai_flags;
	char			*r_servers;	/* as configured, for reload */
	char			*r_hosts;
	struct ev_loop		*r_loop;
	struct metrics_hist	*r_latency;	/* the worker's */
	ev_timer		 r_timer;
	TAILQ_HEAD(, resolve_sock) r_socks;
};

struct resolve_query {
	struct resolver		*q_resolver;
	resolve_cb		 q_cb;		/* NULL once cancelled */
	void			*q_arg;
	uint16_t		 q_port;
	ev_tstamp		 q_start;
	int			 q_starting;	/* inside resolve_start() */
	int			 q_done;
};

static void	resolve_timer_update(struct resolver *);

static void
resolve_io_cb(EV_P_ ev_io *w, int revents)
{
	struct resolve_sock	*rs = w->data;
	struct resolver		*r = rs->rs_resolver;
	ares_socket_t		 rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

	if (revents & EV_READ)
		rfd = w->fd;
	if (revents & EV_WRITE)
		wfd = w->fd;
	/* may close the socket, and free rs through resolve_sock_state_cb */
	ares_process_fd(r->r_channel, rfd, wfd);
	resolve_timer_update(r);
}

static void
resolve_timer_cb(EV_P_ ev_timer *w, int revents)
{
	struct resolver	*r = w->data;

	ares_process_fd(r->r_channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	resolve_timer_update(r);
}

static void
resolve_timer_update(struct resolver *r)
{
	struct timeval	 tv, *tvp;

	ev_timer_stop(r->r_loop, &r->r_timer);
	if ((tvp = ares_timeout(r->r_channel, NULL, &tv)) == NULL)
		return;
	ev_timer_set(&r->r_timer, tvp->tv_sec + tvp->tv_usec / 1e6, 0.);
	ev_timer_start(r->r_loop, &r->r_timer);
}

/* c-ares tells us which sockets it wants watched, and for what */
static void
resolve_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct resolver		*r = data;
	struct resolve_sock	*rs;
	int			 events;

	TAILQ_FOREACH(rs, &r->r_socks, rs_entry)
		if (rs->rs_io.fd == fd)
			break;
	events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	if (events == 0) {
		if (rs != NULL) {
			ev_io_stop(r->r_loop, &rs->rs_io);
			TAILQ_REMOVE(&r->r_socks, rs, rs_entry);
			free(rs);
		}
		return;
	}
	if (rs == NULL) {
		if ((rs = calloc(1, sizeof(*rs))) == NULL) {
			log_warn("resolver: calloc");
			return;
		}
		rs->rs_resolver = r;
		ev_io_init(&rs->rs_io, resolve_io_cb, fd, events);
		rs->rs_io.data = rs;
		TAILQ_INSERT_TAIL(&r->r_socks, rs, rs_entry);
	} else {
		ev_io_stop(r->r_loop, &rs->rs_io);
		ev_io_set(&rs->rs_io, fd, events);
	}
	ev_io_start(r->r_loop, &rs->rs_io);
}

static int
resolve_same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * dns_nameservers and hosts_file apply to the resolver made at startup;
 * a reload that changes them is told so.
 */
void
resolve_reconfigure(struct worker *w, const struct conf *conf)
{
	struct resolver	*r = w->w_resolver;

	if (!resolve_same(r->r_servers, conf->c_dns_nameservers) ||
	    !resolve_same(r->r_hosts, conf->c_hosts_file))
		log_warnx("dns_nameservers and hosts_file changes take effect "
		    "at the next start");
}

int
resolve_init(struct worker *w, const struct conf *conf, char *err,
    size_t errlen)
{
	struct resolver		*r;
	struct ares_options	 opts;
	int			 rc;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "resolver: %s", strerror(errno));
		return -1;
	}
	r->r_loop = w->w_loop;
	r->r_latency = &w->w_metrics.m_dns;
	TAILQ_INIT(&r->r_socks);
	ev_timer_init(&r->r_timer, resolve_timer_cb, 0., 0.);
	r->r_timer.data = r;

	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = resolve_sock_state_cb;
	opts.sock_state_cb_data = r;
	if ((rc = ares_init_options(&r->r_channel, &opts,
	    ARES_OPT_SOCK_STATE_CB)) != ARES_SUCCESS) {
		snprintf(err, errlen, "resolver: %s", ares_strerror(rc));
		free(r);
		return -1;
	}
	if (conf->c_dns_nameservers != NULL) {
		if ((rc = ares_set_servers_ports_csv(r->r_channel,
		    conf->c_dns_nameservers)) != ARES_SUCCESS) {
			snprintf(err, errlen, "dns_nameservers: %s",
			    ares_strerror(rc));
			ares_destroy(r->r_channel);
			free(r);
			return -1;
		}
		r->r_servers = strdup(conf->c_dns_nameservers);
	}
	if (conf->c_hosts_file != NULL) {
		/* c-ares reads the hosts file named by CARES_HOSTS */
		if (setenv("CARES_HOSTS", conf->c_hosts_file, 1) == -1) {
			snprintf(err, errlen, "hosts_file: %s", strerror(errno));
			ares_destroy(r->r_channel);
			free(r);
			return -1;
		}
		r->r_ai_flags |= ARES_AI_ENVHOSTS;
		r->r_hosts = strdup(conf->c_hosts_file);
	}
	w->w_resolver = r;
	return 0;
}

void
resolve_free(struct worker *w)
{
	struct resolver	*r = w->w_resolver;

	if (r == NULL)
		return;
	/* runs the callbacks of pending queries with ARES_EDESTRUCTION */
	ares_destroy(r->r_channel);
	ev_timer_stop(r->r_loop, &r->r_timer);
	free(r->r_servers);
	free(r->r_hosts);
	free(r);
	w->w_resolver = NULL;
}

static void
resolve_done_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct resolve_query		*q = arg;
	struct ares_addrinfo_node	*n;
	struct sockaddr_storage		 addrs[RESOLVE_MAX_ADDRS];
	size_t				 naddrs = 0;
	const char			*errtext = NULL;

	/* every query that ended, even one nobody waits for any more */
	if (status != ARES_EDESTRUCTION)
		metrics_observe(q->q_resolver->r_latency,
		    ev_now(q->q_resolver->r_loop) - q->q_start);
	if (q->q_cb == NULL)
		goto done;
	if (status != ARES_SUCCESS)
		errtext = ares_strerror(status);
	else {
		for (n = res->nodes; n != NULL && naddrs < RESOLVE_MAX_ADDRS;
		    n = n->ai_next) {
			if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
			    n->ai_addrlen > sizeof(addrs[0]))
				continue;
			memset(&addrs[naddrs], 0, sizeof(addrs[0]));
			memcpy(&addrs[naddrs], n->ai_addr, n->ai_addrlen);
			if (n->ai_family == AF_INET)
				((struct sockaddr_in *)&addrs[naddrs])->sin_port =
				    htons(q->q_port);
			else
				((struct sockaddr_in6 *)&addrs[naddrs])->sin6_port =
				    htons(q->q_port);
			naddrs++;
		}
		if (naddrs == 0)
			errtext = "no address";
	}
	q->q_cb(q->q_arg, naddrs > 0 ? 0 : -1, addrs, naddrs, errtext);
 done:
	if (res != NULL)
		ares_freeaddrinfo(res);
	if (q->q_starting)
		q->q_done = 1;		/* resolve_start() frees it */
	else
		free(q);
}

/* An IPv4 or IPv6 literal is its own address: c-ares is not asked. */
static int
resolve_literal(const char *host, uint16_t port, resolve_cb cb, void *arg)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
	} else
		return -1;
	cb(arg, 0, &ss, 1, NULL);
	return 0;
}

/*
 * "localhost" is the loopback addresses (RFC 6761 6.3), answered here:
 * c-ares 1.18 also leaks a copy of the name on every such lookup.
 */
static int
resolve_localhost(const char *host, uint16_t port, resolve_cb cb, void *arg)
{
	struct sockaddr_storage	 addrs[2];
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&addrs[0];
	struct sockaddr_in	*sin = (struct sockaddr_in *)&addrs[1];

	if (strcasecmp(host, "localhost") != 0 &&
	    strcasecmp(host, "localhost.") != 0)
		return -1;
	memset(addrs, 0, sizeof(addrs));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_addr = in6addr_loopback;
	sin6->sin6_port = htons(port);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin->sin_port = htons(port);
	cb(arg, 0, addrs, 2, NULL);
	return 0;
}

/*
 * Resolve host, then cb(arg, error, addrs, naddrs, errtext) with port in
 * every address.  Returns the query to cancel, or NULL when the callback
 * has already run (a literal, localhost, /etc/hosts, or an error).
 */
struct resolve_query *
resolve_start(struct worker *w, const char *host, uint16_t port,
    resolve_cb cb, void *arg)
{
	struct resolver			*r = w->w_resolver;
	struct resolve_query		*q;
	struct ares_addrinfo_hints	 hints;

	if (resolve_literal(host, port, cb, arg) == 0 ||
	    resolve_localhost(host, port, cb, arg) == 0)
		return NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		cb(arg, -1, NULL, 0, "out of memory");
		return NULL;
	}
	q->q_resolver = r;
	q->q_cb = cb;
	q->q_arg = arg;
	q->q_port = port;
	q->q_start = ev_now(r->r_loop);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = r->r_ai_flags;
	/* the callback may run right here, for /etc/hosts or a literal */
	q->q_starting = 1;
	ares_getaddrinfo(r->r_channel, host, NULL, &hints, resolve_done_cb, q);
	q->q_starting = 0;
	resolve_timer_update(r);
	if (q->q_done) {
		free(q);
		return NULL;
	}
	return q;
}

/* The query stays with c-ares until it ends; only its callback is dropped. */
void
resolve_cancel(struct resolve_query *q)
{
	if (q != NULL)
		q->q_cb = NULL;
}
