/* listener.c: listening sockets, accept, and shedding load when out of fds */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/filter.h>

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

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF	51
#endif

/*
 * workers > 1: the http_ports as the main thread keeps them; each has a
 * socket per worker, owned by that worker once handed over.
 */
struct lport {
	struct sockaddr_storage	 lp_addr;
	socklen_t		 lp_addrlen;
	char			*lp_text;
	int			 lp_mark;
	TAILQ_ENTRY(lport)	 lp_entry;
};
static TAILQ_HEAD(, lport) lports = TAILQ_HEAD_INITIALIZER(lports);

static int	listener_socket(const struct sockaddr_storage *, socklen_t, int);

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
	/* the process's count: max_connections is for all workers */
	if (worker_counted(w) >= max) {
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
	return listener_socket(ss, sslen, 0);
}

/* A listening socket on ss; with shared, one of a SO_REUSEPORT group. */
static int
listener_socket(const struct sockaddr_storage *ss, socklen_t sslen,
    int shared)
{
	int	 fd, on = 1, off = 0, saved;

	if ((fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    (shared && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on,
	    sizeof(on)) == -1) ||
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

/* ------------------------------------------------------- workers > 1 */

/*
 * The reuseport group's program (SO_ATTACH_REUSEPORT_CBPF, socket(7)):
 * it returns the index of the socket, in the order they joined the
 * group, that is of the worker.  The skb's data starts past the TCP
 * header, so the IP header is read at SKF_NET_OFF (filter.h): the
 * version nibble, then IPv4's source address (offset 12) or the last 32
 * bits of IPv6's (offset 20); a multiplicative hash, then modulo N.
 * Every connection of a client address thus lands on one worker, and
 * client_ip_max_connections stays exact with no lock and no shared
 * table.  A load that fails ends the program with 0: worker 0.
 */
static int
listener_steer(int fd, unsigned n)
{
	struct sock_filter	 code[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (uint32_t)SKF_NET_OFF),
		BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 2),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 20),
		BPF_JUMP(BPF_JMP | BPF_JA, 1, 0, 0),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)SKF_NET_OFF + 12),
		BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 0x9e3779b1U),
		BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
		BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
		BPF_STMT(BPF_RET | BPF_A, 0),
	};
	struct sock_fprog	 prog;

	memset(&prog, 0, sizeof(prog));	/* its padding goes to the kernel */
	prog.len = nitems(code);
	prog.filter = code;
	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog,
	    sizeof(prog));
}

/* As listener_bind(), with SO_REUSEPORT: one of a group. */
static int
listener_bind_shared(const struct sockaddr_storage *ss, socklen_t sslen)
{
	return listener_socket(ss, sslen, 1);
}

void
listener_list_free(struct listener_list *ll)
{
	struct listener	*l;

	while ((l = TAILQ_FIRST(ll)) != NULL) {
		TAILQ_REMOVE(ll, l, l_entry);
		listener_free(l);
	}
}

static struct listener *
listener_record(const struct sockaddr_storage *ss, socklen_t len,
    const char *text)
{
	struct listener	*l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	if ((l->l_text = strdup(text)) == NULL) {
		free(l);
		return NULL;
	}
	l->l_fd = -1;
	l->l_addr = *ss;
	l->l_addrlen = len;
	l->l_wildcard = addr_is_any(ss);
	return l;
}

/* Opens n sockets for lc, in worker order, onto add[0..n). */
static int
listener_group_open(unsigned n, const struct listen_conf *lc,
    struct listener_list *add, char *err, size_t errlen)
{
	static int	 warned;
	struct listener	*l, *first = NULL;
	unsigned	 i;

	for (i = 0; i < n; i++) {
		if ((l = listener_record(&lc->lc_addr, lc->lc_addrlen,
		    lc->lc_text)) == NULL ||
		    (l->l_fd = listener_bind_shared(&l->l_addr,
		    l->l_addrlen)) == -1) {
			snprintf(err, errlen, "http_port %s: %s", lc->lc_text,
			    strerror(errno));
			listener_free(l);
			return -1;
		}
		TAILQ_INSERT_TAIL(&add[i], l, l_entry);
		if (first == NULL)
			first = l;
	}
	if (listener_steer(first->l_fd, n) == -1) {
		/* still exact, at the price of a lock at accept and close */
		if (!warned++)
			log_warn("http_port %s: cannot attach the reuseport "
			    "program: client_ip_max_connections uses one "
			    "table for all workers, locked", lc->lc_text);
		limit_share();
	}
	return 0;
}

int
listener_group_sync(unsigned n, struct conf *conf, struct listener_list *add,
    struct listener_list *del, char *err, size_t errlen)
{
	TAILQ_HEAD(, lport)	 fresh = TAILQ_HEAD_INITIALIZER(fresh);
	struct listen_conf	*lc;
	struct lport		*lp, *next;
	struct listener		*l;
	unsigned		 i;

	TAILQ_FOREACH(lp, &lports, lp_entry)
		lp->lp_mark = 1;
	TAILQ_FOREACH(lc, &conf->c_listens, lc_entry) {
		TAILQ_FOREACH(lp, &lports, lp_entry)
			if (lp->lp_addrlen == lc->lc_addrlen &&
			    memcmp(&lp->lp_addr, &lc->lc_addr,
			    lc->lc_addrlen) == 0)
				break;
		if (lp == NULL)
			TAILQ_FOREACH(lp, &fresh, lp_entry)
				if (lp->lp_addrlen == lc->lc_addrlen &&
				    memcmp(&lp->lp_addr, &lc->lc_addr,
				    lc->lc_addrlen) == 0)
					break;
		if (lp != NULL) {
			lp->lp_mark = 0;
			continue;
		}
		if ((lp = calloc(1, sizeof(*lp))) == NULL ||
		    (lp->lp_text = strdup(lc->lc_text)) == NULL) {
			free(lp);
			snprintf(err, errlen, "http_port %s: %s", lc->lc_text,
			    strerror(errno));
			goto fail;
		}
		lp->lp_addr = lc->lc_addr;
		lp->lp_addrlen = lc->lc_addrlen;
		TAILQ_INSERT_TAIL(&fresh, lp, lp_entry);
		if (listener_group_open(n, lc, add, err, errlen) == -1)
			goto fail;
	}
	for (lp = TAILQ_FIRST(&lports); lp != NULL; lp = next) {
		next = TAILQ_NEXT(lp, lp_entry);
		if (!lp->lp_mark)
			continue;
		for (i = 0; i < n; i++) {
			if ((l = listener_record(&lp->lp_addr, lp->lp_addrlen,
			    lp->lp_text)) == NULL)
				continue;	/* it stays open: harmless */
			TAILQ_INSERT_TAIL(&del[i], l, l_entry);
		}
		log_info("stopped listening on %s", lp->lp_text);
		TAILQ_REMOVE(&lports, lp, lp_entry);
		free(lp->lp_text);
		free(lp);
	}
	while ((lp = TAILQ_FIRST(&fresh)) != NULL) {
		TAILQ_REMOVE(&fresh, lp, lp_entry);
		TAILQ_INSERT_TAIL(&lports, lp, lp_entry);
		log_info("listening on %s (%u sockets, SO_REUSEPORT)",
		    lp->lp_text, n);
	}
	return 0;
 fail:
	while ((lp = TAILQ_FIRST(&fresh)) != NULL) {
		TAILQ_REMOVE(&fresh, lp, lp_entry);
		free(lp->lp_text);
		free(lp);
	}
	for (i = 0; i < n; i++) {
		listener_list_free(&add[i]);
		listener_list_free(&del[i]);
	}
	return -1;
}

void
listener_adopt(struct worker *w, struct listener_list *add,
    struct listener_list *del)
{
	struct listener	*l, *d;

	while ((d = TAILQ_FIRST(del)) != NULL) {
		TAILQ_REMOVE(del, d, l_entry);
		TAILQ_FOREACH(l, &w->w_listeners, l_entry)
			if (l->l_addrlen == d->l_addrlen &&
			    memcmp(&l->l_addr, &d->l_addr, d->l_addrlen) == 0)
				break;
		if (l != NULL) {
			TAILQ_REMOVE(&w->w_listeners, l, l_entry);
			listener_free(l);
		}
		listener_free(d);
	}
	while ((l = TAILQ_FIRST(add)) != NULL) {
		TAILQ_REMOVE(add, l, l_entry);
		if (w->w_stopping) {
			listener_free(l);
			continue;
		}
		TAILQ_INSERT_TAIL(&w->w_listeners, l, l_entry);
		listener_watch(w, l);
	}
	w->w_listening = 1;
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
