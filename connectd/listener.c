/* listener.c: listening sockets, accept, and shedding load when out of fds */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectd.h"

#define LISTEN_BACKLOG		4096
#define ACCEPT_BURST		64
#define ACCEPT_NOFD_REST	0.1	/* seconds without accept after EMFILE */

static void
listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	if (l->l_worker != NULL)
		ev_io_stop(l->l_worker->w_loop, &l->l_io);
	if (l->l_fd != -1)
		close(l->l_fd);
	free(l->l_text);
	free(l);
}

/* Out of descriptors: accept and drop a burst through the spare fd. */
static void
listener_shed(struct worker *w, int fd)
{
	int	 i, s;

	if (w->w_spare_fd == -1)
		return;
	close(w->w_spare_fd);
	w->w_spare_fd = -1;
	for (i = 0; i < ACCEPT_BURST; i++) {
		if ((s = accept(fd, NULL, NULL)) == -1)
			break;
		close(s);
	}
	w->w_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Start or stop accepting as the pause reasons say. */
static void
listener_apply(struct worker *w)
{
	if (w->w_accept_paused)
		listener_pause(w);
	else if (!w->w_stopping)
		listener_resume(w);
}

static void
listener_rest_cb(EV_P_ ev_timer *t, int revents)
{
	struct worker	*w = t->data;

	w->w_accept_paused &= ~LISTEN_PAUSE_NOFD;
	listener_apply(w);
}

/*
 * Called whenever the number of connections counted against the limits
 * changes (a refusal stops counting once its reply is out): at max_connections
 * accepting stops, and new clients wait in the listen queue as they do
 * when Squid runs short of descriptors.
 */
void
listener_limit(struct worker *w)
{
	unsigned	 max;
	int		 was = w->w_accept_paused;

	max = w->w_conf->c_max_connections ? w->w_conf->c_max_connections :
	    w->w_auto_max;
	if (max == 0)
		max = 1;
	if (w->w_counted >= max) {
		w->w_accept_paused |= LISTEN_PAUSE_LIMIT;
		if (!(was & LISTEN_PAUSE_LIMIT) &&
		    ev_now(w->w_loop) - w->w_accept_warned >= 10.) {
			w->w_accept_warned = ev_now(w->w_loop);
			log_warnx("max_connections %u reached: not accepting "
			    "until a connection closes", max);
		}
	} else
		w->w_accept_paused &= ~LISTEN_PAUSE_LIMIT;
	if (was != w->w_accept_paused)
		listener_apply(w);
}

static void
listener_accept_cb(EV_P_ ev_io *io, int revents)
{
	struct listener		*l = io->data;
	struct worker		*w = l->l_worker;
	struct sockaddr_storage	 peer, local;
	socklen_t		 len;
	int			 fd, i;

	for (i = 0; i < ACCEPT_BURST && !w->w_accept_paused; i++) {
		len = sizeof(peer);
		fd = accept4(l->l_fd, (struct sockaddr *)&peer, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EAGAIN || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			w->w_stats.st_accept_errors++;
			if (ev_now(EV_A) - w->w_accept_warned >= 10.) {
				w->w_accept_warned = ev_now(EV_A);
				log_warn("accept on %s", l->l_text);
			}
			if (errno != EMFILE && errno != ENFILE)
				return;
			/* drop one, then rest: the queue stays readable */
			listener_shed(w, l->l_fd);
			w->w_accept_paused |= LISTEN_PAUSE_NOFD;
			listener_apply(w);
			ev_timer_stop(EV_A, &w->w_accept_timer);
			ev_timer_init(&w->w_accept_timer, listener_rest_cb,
			    ACCEPT_NOFD_REST, 0.);
			w->w_accept_timer.data = w;
			ev_timer_start(EV_A, &w->w_accept_timer);
			return;
		}
		/* only a wildcard listener needs to ask which address it was */
		local = l->l_addr;
		len = sizeof(local);
		if (l->l_wildcard &&
		    getsockname(fd, (struct sockaddr *)&local, &len) == -1)
			local = l->l_addr;
		conn_accept(w, fd, &peer, &local);
	}
}

/* Also the metrics_port's (admin.c): one way to bind. */
int
listener_bind(const struct sockaddr_storage *ss, socklen_t sslen)
{
	int	 fd, on = 1, off = 0, saved;

	if ((fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    /* a bare port listens on [::] for both families, as Squid does */
	    (ss->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &off, sizeof(off)) == -1) ||
	    bind(fd, (const struct sockaddr *)ss, sslen) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Watch l's socket for connections (unless accepting is paused). */
static void
listener_watch(struct worker *w, struct listener *l)
{
	l->l_worker = w;
	ev_io_init(&l->l_io, listener_accept_cb, l->l_fd, EV_READ);
	l->l_io.data = l;
	if (!w->w_stopping && !w->w_accept_paused)
		ev_io_start(w->w_loop, &l->l_io);
}

static struct listener *
listener_open(struct worker *w, const struct listen_conf *lc, char *err,
    size_t errlen)
{
	struct listener	*l;

	if ((l = calloc(1, sizeof(*l))) == NULL ||
	    (l->l_text = strdup(lc->lc_text)) == NULL) {
		snprintf(err, errlen, "http_port %s: %s", lc->lc_text,
		    strerror(errno));
		free(l);
		return NULL;
	}
	l->l_addr = lc->lc_addr;
	l->l_addrlen = lc->lc_addrlen;
	l->l_wildcard = addr_is_any(&lc->lc_addr);
	if ((l->l_fd = listener_bind(&l->l_addr, l->l_addrlen)) == -1) {
		snprintf(err, errlen, "http_port %s: %s", lc->lc_text,
		    strerror(errno));
		listener_free(l);
		return NULL;
	}
	listener_watch(w, l);
	return l;
}

static int
listener_same(const struct listener *l, const struct listen_conf *lc)
{
	return l->l_addrlen == lc->lc_addrlen &&
	    memcmp(&l->l_addr, &lc->lc_addr, lc->lc_addrlen) == 0;
}

/*
 * Before binding lc: an old listener that is going anyway and would keep
 * lc's address from being bound (127.0.0.1:P and 0.0.0.0:P, say) lets
 * go of its socket first.
 */
static void
listener_yield(struct worker *w, const struct listen_conf *lc)
{
	struct listener	*l;

	TAILQ_FOREACH(l, &w->w_listeners, l_entry)
		if (l->l_mark && l->l_fd != -1 &&
		    addr_bind_clash(&l->l_addr, &lc->lc_addr)) {
			ev_io_stop(w->w_loop, &l->l_io);
			close(l->l_fd);
			l->l_fd = -1;
		}
}

/*
 * Make the open listeners match the configuration: keep those that stay,
 * open the new ones, then close the rest.  A new address that clashes
 * with an old one being dropped is bound once the old one lets go.  If
 * any new one cannot be opened, the old ones are bound again, nothing
 * changes, and -1 is returned.
 */
int
listener_sync(struct worker *w, struct conf *conf, char *err, size_t errlen)
{
	TAILQ_HEAD(, listener)	 fresh = TAILQ_HEAD_INITIALIZER(fresh);
	struct listener		*l, *next;
	struct listen_conf	*lc;

	TAILQ_FOREACH(l, &w->w_listeners, l_entry)
		l->l_mark = 1;
	TAILQ_FOREACH(lc, &conf->c_listens, lc_entry)
		TAILQ_FOREACH(l, &w->w_listeners, l_entry)
			if (listener_same(l, lc))
				l->l_mark = 0;
	TAILQ_FOREACH(lc, &conf->c_listens, lc_entry) {
		TAILQ_FOREACH(l, &w->w_listeners, l_entry)
			if (listener_same(l, lc))
				break;
		if (l != NULL)
			continue;
		TAILQ_FOREACH(l, &fresh, l_entry)
			if (listener_same(l, lc))
				break;
		if (l != NULL)
			continue;
		listener_yield(w, lc);
		if ((l = listener_open(w, lc, err, errlen)) == NULL)
			goto fail;
		TAILQ_INSERT_TAIL(&fresh, l, l_entry);
	}
	for (l = TAILQ_FIRST(&w->w_listeners); l != NULL; l = next) {
		next = TAILQ_NEXT(l, l_entry);
		if (l->l_mark) {
			TAILQ_REMOVE(&w->w_listeners, l, l_entry);
			log_info("stopped listening on %s", l->l_text);
			listener_free(l);
		}
	}
	while ((l = TAILQ_FIRST(&fresh)) != NULL) {
		TAILQ_REMOVE(&fresh, l, l_entry);
		TAILQ_INSERT_TAIL(&w->w_listeners, l, l_entry);
		log_info("listening on %s", l->l_text);
	}
	return 0;

 fail:
	while ((l = TAILQ_FIRST(&fresh)) != NULL) {
		TAILQ_REMOVE(&fresh, l, l_entry);
		listener_free(l);
	}
	for (l = TAILQ_FIRST(&w->w_listeners); l != NULL; l = next) {
		next = TAILQ_NEXT(l, l_entry);
		l->l_mark = 0;
		if (l->l_fd != -1)
			continue;
		if ((l->l_fd = listener_bind(&l->l_addr, l->l_addrlen)) != -1) {
			listener_watch(w, l);
			continue;
		}
		log_warn("stopped listening on %s: cannot bind it again",
		    l->l_text);
		TAILQ_REMOVE(&w->w_listeners, l, l_entry);
		listener_free(l);
	}
	return -1;
}

void
listener_pause(struct worker *w)
{
	struct listener	*l;

	TAILQ_FOREACH(l, &w->w_listeners, l_entry)
		ev_io_stop(w->w_loop, &l->l_io);
}

void
listener_resume(struct worker *w)
{
	struct listener	*l;

	TAILQ_FOREACH(l, &w->w_listeners, l_entry)
		ev_io_start(w->w_loop, &l->l_io);
}

void
listener_close_all(struct worker *w)
{
	struct listener	*l;

	ev_timer_stop(w->w_loop, &w->w_accept_timer);
	while ((l = TAILQ_FIRST(&w->w_listeners)) != NULL) {
		TAILQ_REMOVE(&w->w_listeners, l, l_entry);
		listener_free(l);
	}
}
