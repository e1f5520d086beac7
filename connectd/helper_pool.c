/* helper_pool.c: the children of each external_acl_type: spawn, pipes, channel IDs, queue, restarts, reloads */
#include <sys/types.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connectd.h"
#include "helper.h"
#include "net.h"

#define HELPER_READ_CHUNK	4096
#define HELPER_TICK		0.5	/* timeouts, backoff, retirement */

extern char	**environ;

static void	helper_child_read_cb(EV_P_ ev_io *, int);
static void	helper_child_write_cb(EV_P_ ev_io *, int);
static void	helper_child_err_cb(EV_P_ ev_io *, int);
static void	helper_exit_add(const struct helper_pool *);
static void	helper_child_exit_cb(EV_P_ ev_child *, int);
static void	helper_child_watch(struct helper_child *);
static void	helper_child_unwatch(struct helper_child *);
static void	helper_child_kill_cb(EV_P_ ev_timer *, int);
static void	helper_pool_timer_cb(EV_P_ ev_timer *, int);
static void	helper_pool_dispatch(struct helper_pool *);
static void	helper_child_fail(struct helper_child *, const char *);
static void	helper_child_close(struct helper_child *);
static void	helper_pool_kill_all(struct helper_pool *);

#define POOL_LOOP(hp)	((hp)->hp_worker->w_loop)

/* A pool for definition hd (copied), not yet in a registry; NULL if out of memory. */
static struct helper_pool *
helper_pool_new(struct worker *w, const struct helper_def *hd)
{
	struct helper_pool	*hp;

	if ((hp = calloc(1, sizeof(*hp))) == NULL)
		return NULL;
	if ((hp->hp_def = helper_def_dup(hd)) == NULL ||
	    helper_cache_init(&hp->hp_cache) == -1) {
		helper_def_free(hp->hp_def);
		free(hp);
		return NULL;
	}
	hp->hp_worker = w;
	hp->hp_active = 1;
	TAILQ_INIT(&hp->hp_children);
	TAILQ_INIT(&hp->hp_queue);
	ev_timer_init(&hp->hp_timer, helper_pool_timer_cb, HELPER_TICK,
	    HELPER_TICK);
	hp->hp_timer.data = hp;
	ev_timer_start(POOL_LOOP(hp), &hp->hp_timer);
	helper_pool_dispatch(hp);
	return hp;
}

/* Unlink from the registry and free: nothing may refer to it any more. */
static void
helper_pool_free(struct helper_pool *hp)
{
	struct helper_pools	*hr = hp->hp_worker->w_helpers;

	ev_timer_stop(POOL_LOOP(hp), &hp->hp_timer);
	if (hp->hp_active)
		TAILQ_REMOVE(&hr->hr_active, hp, hp_entry);
	else
		TAILQ_REMOVE(&hr->hr_retired, hp, hp_entry);
	helper_cache_clear(hp);
	log_debug("helper %s: pool freed", hp->hp_def->hd_name);
	helper_def_free(hp->hp_def);
	free(hp);
}

static int
helper_nonblock(int fd)
{
	int	fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -1;
	return 0;
}

static void
helper_close(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

/* A child that failed fast makes the next start wait, doubling each time. */
static void
helper_pool_backoff(struct helper_pool *hp, ev_tstamp age)
{
	ev_tstamp	delay;

	hp->hp_failed = 1;
	if (age >= HELPER_QUICK_DEATH) {
		hp->hp_deaths = 0;
		return;
	}
	if (hp->hp_deaths < 16)
		hp->hp_deaths++;
	if (hp->hp_deaths <= 1)
		return;
	delay = 0.1 * (double)(1 << (hp->hp_deaths - 2));
	if (delay > HELPER_BACKOFF_MAX)
		delay = HELPER_BACKOFF_MAX;
	hp->hp_spawn_after = ev_now(POOL_LOOP(hp)) + delay;
}

static struct helper_child *
helper_child_spawn(struct helper_pool *hp)
{
	struct helper_def		*hd = hp->hp_def;
	struct helper_child		*hc;
	posix_spawn_file_actions_t	 fa;
	posix_spawnattr_t		 sa;
	sigset_t			 none, dfl;
	int				 in[2] = { -1, -1 }, out[2] = { -1, -1 };
	int				 err[2] = { -1, -1 };
	int				 fa_init = 0, sa_init = 0, rv;
	size_t				 nslots;

	if ((hc = calloc(1, sizeof(*hc))) == NULL) {
		log_warn("helper %s: calloc", hd->hd_name);
		return NULL;
	}
	hc->hc_in = hc->hc_out = hc->hc_err = -1;
	buf_init(&hc->hc_rbuf, HELPER_REPLY_MAX + HELPER_READ_CHUNK);
	nslots = hd->hd_concurrency > 0 ? (size_t)hd->hd_concurrency : 1;
	if ((hc->hc_slots = calloc(nslots, sizeof(*hc->hc_slots))) == NULL) {
		log_warn("helper %s: calloc", hd->hd_name);
		goto fail;
	}
	hc->hc_nslots = nslots;
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1 ||
	    pipe2(err, O_CLOEXEC) == -1) {
		log_warn("helper %s: pipe", hd->hd_name);
		goto fail;
	}
	if (posix_spawn_file_actions_init(&fa) != 0)
		goto fail;
	fa_init = 1;
	if (posix_spawnattr_init(&sa) != 0)
		goto fail;
	sa_init = 1;
	/* libev blocks the signals it watches; the helper gets a clean slate */
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGHUP);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGUSR1);
	sigaddset(&dfl, SIGUSR2);
	sigaddset(&dfl, SIGCHLD);
	sigaddset(&dfl, SIGALRM);
	if (posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO) != 0 ||
	    posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1)
	    != 0 ||
	    posix_spawnattr_setsigmask(&sa, &none) != 0 ||
	    posix_spawnattr_setsigdefault(&sa, &dfl) != 0 ||
	    posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF) != 0) {
		log_warnx("helper %s: cannot set up the child", hd->hd_name);
		goto fail;
	}
	/* a program name without a slash is looked up in PATH */
	rv = posix_spawnp(&hc->hc_pid, hd->hd_argv[0], &fa, &sa,
	    hd->hd_argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&sa);
	fa_init = sa_init = 0;
	if (rv != 0) {
		log_warnx("helper %s: cannot start %s: %s", hd->hd_name,
		    hd->hd_argv[0], strerror(rv));
		goto fail;
	}
	helper_close(&in[0]);
	helper_close(&out[1]);
	helper_close(&err[1]);
	hc->hc_in = in[1];
	hc->hc_out = out[0];
	hc->hc_err = err[0];
	if (helper_nonblock(hc->hc_in) == -1 ||
	    helper_nonblock(hc->hc_out) == -1 ||
	    helper_nonblock(hc->hc_err) == -1)
		log_warn("helper %s: fcntl", hd->hd_name);

	hc->hc_pool = hp;
	hc->hc_state = HC_RUNNING;
	hc->hc_started = ev_now(POOL_LOOP(hp));
	ev_io_init(&hc->hc_rio, helper_child_read_cb, hc->hc_out, EV_READ);
	ev_io_init(&hc->hc_wio, helper_child_write_cb, hc->hc_in, EV_WRITE);
	ev_io_init(&hc->hc_eio, helper_child_err_cb, hc->hc_err, EV_READ);
	ev_child_init(&hc->hc_cw, helper_child_exit_cb, hc->hc_pid, 0);
	ev_timer_init(&hc->hc_kill, helper_child_kill_cb, HELPER_KILL_WAIT, 0.);
	hc->hc_rio.data = hc->hc_wio.data = hc->hc_eio.data = hc;
	hc->hc_cw.data = hc->hc_kill.data = hc;
	ev_io_start(POOL_LOOP(hp), &hc->hc_rio);
	ev_io_start(POOL_LOOP(hp), &hc->hc_eio);
	helper_child_watch(hc);
	TAILQ_INSERT_TAIL(&hp->hp_children, hc, hc_entry);
	hp->hp_nrunning++;
	hp->hp_st.hs_spawned++;
	if (hp->hp_failed) {
		hp->hp_st.hs_restarts++;
		hp->hp_failed = 0;
	}
	log_info("helper %s[%ld]: started %s", hd->hd_name, (long)hc->hc_pid,
	    hd->hd_argv[0]);
	return hc;
 fail:
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	if (sa_init)
		posix_spawnattr_destroy(&sa);
	helper_close(&in[0]);
	helper_close(&in[1]);
	helper_close(&out[0]);
	helper_close(&out[1]);
	helper_close(&err[0]);
	helper_close(&err[1]);
	free(hc->hc_slots);
	free(hc);
	helper_pool_backoff(hp, 0.);
	return NULL;
}

static void
helper_pidfd_cb(EV_P_ ev_io *io, int revents)
{
	struct helper_child	*hc = io->data;
	int			 st = 0;

	ev_io_stop(EV_A, io);
	/* 0x7f00: no status (another thread's waitpid took it), "gone" */
	if (waitpid(hc->hc_pid, &st, WNOHANG) <= 0)
		st = 0x7f00;
	hc->hc_cw.rstatus = st;
	helper_child_exit_cb(EV_A, &hc->hc_cw, 0);
}

/*
 * Learn of the child's exit.  libev's child watchers work in the
 * default loop only (ev(3), "ev_child"), which reaps every child; a
 * worker's loop of `workers N` (worker.c) watches a pidfd instead
 * (pidfd_open(2), Linux 5.3): readable once the child has exited.
 */
static void
helper_child_watch(struct helper_child *hc)
{
	struct ev_loop	*loop = POOL_LOOP(hc->hc_pool);

	hc->hc_pidfd = -1;
	if (ev_is_default_loop(loop)) {
		ev_child_start(loop, &hc->hc_cw);
		return;
	}
	if ((hc->hc_pidfd = (int)syscall(SYS_pidfd_open, hc->hc_pid, 0)) ==
	    -1) {
		log_warn("helper %s[%ld]: pidfd_open",
		    hc->hc_pool->hp_def->hd_name, (long)hc->hc_pid);
		return;
	}
	(void)fcntl(hc->hc_pidfd, F_SETFD, FD_CLOEXEC);
	ev_io_init(&hc->hc_pidio, helper_pidfd_cb, hc->hc_pidfd, EV_READ);
	hc->hc_pidio.data = hc;
	ev_io_start(loop, &hc->hc_pidio);
}

static void
helper_child_unwatch(struct helper_child *hc)
{
	struct ev_loop	*loop = POOL_LOOP(hc->hc_pool);

	if (ev_is_default_loop(loop)) {
		ev_child_stop(loop, &hc->hc_cw);
		return;
	}
	if (hc->hc_pidfd == -1)
		return;
	ev_io_stop(loop, &hc->hc_pidio);
	close(hc->hc_pidfd);
	hc->hc_pidfd = -1;
}

static void
helper_child_free(struct helper_child *hc)
{
	struct ev_loop	*loop = POOL_LOOP(hc->hc_pool);

	ev_io_stop(loop, &hc->hc_rio);
	ev_io_stop(loop, &hc->hc_wio);
	ev_io_stop(loop, &hc->hc_eio);
	helper_child_unwatch(hc);
	ev_timer_stop(loop, &hc->hc_kill);
	helper_close(&hc->hc_in);
	helper_close(&hc->hc_out);
	helper_close(&hc->hc_err);
	TAILQ_REMOVE(&hc->hc_pool->hp_children, hc, hc_entry);
	free(hc->hc_slots);
	buf_free(&hc->hc_wbuf);
	buf_free(&hc->hc_rbuf);
	free(hc);
}

static int
helper_pool_can_spawn(struct helper_pool *hp)
{
	return hp->hp_active && !hp->hp_worker->w_stopping &&
	    hp->hp_nrunning < hp->hp_def->hd_children_max &&
	    ev_now(POOL_LOOP(hp)) >= hp->hp_spawn_after;
}

static int
helper_child_free_slots(const struct helper_child *hc)
{
	return hc->hc_state == HC_RUNNING && hc->hc_inflight < hc->hc_nslots;
}

/* The least busy running child with room, or NULL. */
static struct helper_child *
helper_pool_pick(struct helper_pool *hp)
{
	struct helper_child	*hc, *best = NULL;

	TAILQ_FOREACH(hc, &hp->hp_children, hc_entry) {
		if (!helper_child_free_slots(hc))
			continue;
		if (best == NULL || hc->hc_inflight < best->hc_inflight)
			best = hc;
		if (hc->hc_inflight == 0)
			break;
	}
	return best;
}

static void
helper_child_flush(struct helper_child *hc)
{
	struct ev_loop	*loop = POOL_LOOP(hc->hc_pool);
	int		 err;

	buf_drop(&hc->hc_wbuf, net_write(hc->hc_in, hc->hc_wbuf.b_data,
	    hc->hc_wbuf.b_len, &err));
	if (err != 0) {
		/* the failure is handled from the loop, not from here */
		hc->hc_werrno = err;
		ev_feed_event(loop, &hc->hc_wio, EV_WRITE);
		return;
	}
	if (hc->hc_wbuf.b_len > 0)
		ev_io_start(loop, &hc->hc_wio);
	else
		ev_io_stop(loop, &hc->hc_wio);
}

/* Queue "[ID ]LINE\n" for the child; -1 if out of memory. */
static int
helper_child_send(struct helper_child *hc, struct helper_lookup *hl)
{
	char			 id[HELPER_ID_MAXLEN + 2];
	size_t			 slot, len = hc->hc_wbuf.b_len;

	for (slot = hc->hc_hint; hc->hc_slots[slot] != NULL; ) {
		if (++slot == hc->hc_nslots)
			slot = 0;
	}
	id[0] = '\0';
	if (hc->hc_pool->hp_def->hd_concurrency > 0)
		snprintf(id, sizeof(id), "%zu ", slot);
	if (buf_addstr(&hc->hc_wbuf, id) == -1 ||
	    buf_add(&hc->hc_wbuf, hl->hl_line, hl->hl_linelen) == -1 ||
	    buf_addc(&hc->hc_wbuf, '\n') == -1) {
		hc->hc_wbuf.b_len = len;	/* never half a line */
		return -1;
	}
	hc->hc_slots[slot] = hl;
	hc->hc_inflight++;
	hc->hc_hint = slot + 1 == hc->hc_nslots ? 0 : slot + 1;
	hl->hl_child = hc;
	hl->hl_slot = slot;
	hl->hl_sends++;
	hl->hl_sent = ev_time();
	hc->hc_pool->hp_st.hs_requests++;
	helper_child_flush(hc);
	return 0;
}

static int
helper_pool_idle_children(const struct helper_pool *hp)
{
	const struct helper_child	*hc;
	int				 n = 0;

	TAILQ_FOREACH(hc, &hp->hp_children, hc_entry)
		if (hc->hc_state == HC_RUNNING && hc->hc_inflight == 0)
			n++;
	return n;
}

/* The answer to hl, or a failure: it leaves the pool for its owner. */
static void
helper_pool_done(struct helper_lookup *hl, const struct helper_reply *rp,
    const char *error)
{
	hl->hl_pool->hp_nlookups--;
	hl->hl_done(hl, rp, error);
}

/* helper_pool_submit() for a lookup already counted in hp_nlookups. */
static const char *
helper_pool_route(struct helper_pool *hp, struct helper_lookup *hl)
{
	struct helper_child	*hc;

	hl->hl_child = NULL;
	hl->hl_pool = hp;
	if ((hc = helper_pool_pick(hp)) == NULL && helper_pool_can_spawn(hp))
		hc = helper_child_spawn(hp);
	if (hc != NULL) {
		if (helper_child_send(hc, hl) == -1)
			return "helper_down";
	} else if (hp->hp_nrunning == 0 && !helper_pool_can_spawn(hp)) {
		hp->hp_st.hs_down++;
		return "helper_down";
	} else if (hp->hp_nqueued >= (size_t)hp->hp_def->hd_queue_size) {
		hp->hp_st.hs_queue_full++;
		return "queue_full";
	} else {
		TAILQ_INSERT_TAIL(&hp->hp_queue, hl, hl_entry);
		hp->hp_nqueued++;
	}
	/* children-idle: keep some ahead of the load */
	if (helper_pool_idle_children(hp) < hp->hp_def->hd_children_idle &&
	    helper_pool_can_spawn(hp))
		(void)helper_child_spawn(hp);
	return NULL;
}

const char *
helper_pool_submit(struct helper_pool *hp, struct helper_lookup *hl)
{
	const char	*why;

	if ((why = helper_pool_route(hp, hl)) == NULL)
		hp->hp_nlookups++;
	return why;
}

/* Queued lookups to free children; children up to children-startup. */
static void
helper_pool_dispatch(struct helper_pool *hp)
{
	struct helper_lookup	*hl;
	struct helper_child	*hc;

	while (hp->hp_active &&
	    hp->hp_nrunning < hp->hp_def->hd_children_startup &&
	    helper_pool_can_spawn(hp))
		if (helper_child_spawn(hp) == NULL)
			break;
	while ((hl = TAILQ_FIRST(&hp->hp_queue)) != NULL) {
		if ((hc = helper_pool_pick(hp)) == NULL &&
		    helper_pool_can_spawn(hp))
			hc = helper_child_spawn(hp);
		if (hc == NULL)
			break;
		TAILQ_REMOVE(&hp->hp_queue, hl, hl_entry);
		hp->hp_nqueued--;
		if (helper_child_send(hc, hl) == -1)
			helper_pool_done(hl, NULL, "helper_down");
	}
	/* nobody left to serve the queue */
	if (hp->hp_nrunning == 0 && !helper_pool_can_spawn(hp)) {
		while ((hl = TAILQ_FIRST(&hp->hp_queue)) != NULL) {
			TAILQ_REMOVE(&hp->hp_queue, hl, hl_entry);
			hp->hp_nqueued--;
			hp->hp_st.hs_down++;
			helper_pool_done(hl, NULL, "helper_down");
		}
	}
	/* a retired pool's children go once their work is done */
	if (!hp->hp_active && TAILQ_EMPTY(&hp->hp_queue))
		TAILQ_FOREACH(hc, &hp->hp_children, hc_entry)
			if (hc->hc_state == HC_RUNNING && hc->hc_inflight == 0)
				helper_child_close(hc);
}

/* A lookup leaves its child (or the queue): send it elsewhere once, or fail. */
static void
helper_lookup_retry(struct helper_lookup *hl, const char *why)
{
	const char	*err;

	hl->hl_child = NULL;
	if (hl->hl_sends < 2 &&
	    (err = helper_pool_route(hl->hl_pool, hl)) == NULL)
		return;
	helper_pool_done(hl, NULL, why);
}

/* Stop using a child: kill it, retry what it had, owe a restart. */
static void
helper_child_fail(struct helper_child *hc, const char *why)
{
	struct helper_pool	*hp = hc->hc_pool;
	struct helper_lookup	*hl;
	size_t			 i;

	if (hc->hc_state == HC_DEAD)
		return;
	if (why != NULL)
		log_warnx("helper %s[%ld]: %s; stopping it",
		    hp->hp_def->hd_name, (long)hc->hc_pid, why);
	if (hc->hc_state == HC_RUNNING)
		hp->hp_nrunning--;
	hc->hc_state = HC_DEAD;
	ev_io_stop(POOL_LOOP(hp), &hc->hc_rio);
	ev_io_stop(POOL_LOOP(hp), &hc->hc_wio);
	helper_close(&hc->hc_in);
	helper_close(&hc->hc_out);
	if (!hc->hc_reaped)
		(void)kill(hc->hc_pid, SIGKILL);
	ev_timer_stop(POOL_LOOP(hp), &hc->hc_kill);
	helper_pool_backoff(hp, ev_now(POOL_LOOP(hp)) - hc->hc_started);
	for (i = 0; i < hc->hc_nslots; i++) {
		if ((hl = hc->hc_slots[i]) == NULL)
			continue;
		hc->hc_slots[i] = NULL;
		hc->hc_inflight--;
		helper_lookup_retry(hl, "helper_down");
	}
	helper_pool_dispatch(hp);
}

/* Close stdin: a helper exits on EOF.  It is killed if it does not. */
static void
helper_child_close(struct helper_child *hc)
{
	struct ev_loop	*loop = POOL_LOOP(hc->hc_pool);

	if (hc->hc_state != HC_RUNNING)
		return;
	hc->hc_state = HC_CLOSING;
	hc->hc_pool->hp_nrunning--;
	ev_io_stop(loop, &hc->hc_wio);
	ev_io_stop(loop, &hc->hc_rio);
	helper_close(&hc->hc_in);
	helper_close(&hc->hc_out);
	ev_timer_start(loop, &hc->hc_kill);
}

static void
helper_child_kill_cb(EV_P_ ev_timer *t, int revents)
{
	struct helper_child	*hc = t->data;

	log_warnx("helper %s[%ld]: still running %.0f s after EOF; killing it",
	    hc->hc_pool->hp_def->hd_name, (long)hc->hc_pid, HELPER_KILL_WAIT);
	(void)kill(hc->hc_pid, SIGKILL);
}

static void
helper_child_malformed(struct helper_child *hc, const char *why,
    const char *line, size_t len)
{
	char	buf[256], text[121];
	size_t	i, n = len > 120 ? 120 : len;

	/* the helper's bytes go into our log: printable ASCII only */
	for (i = 0; i < n; i++)
		text[i] = line[i] >= 0x20 && line[i] < 0x7f ? line[i] : '?';
	text[n] = '\0';
	hc->hc_pool->hp_st.hs_malformed++;
	snprintf(buf, sizeof(buf), "malformed reply (%s): \"%s\"%s", why,
	    text, len > 120 ? "..." : "");
	helper_child_fail(hc, buf);
}

/* One reply line.  Returns -1 once the child has been stopped. */
static int
helper_child_line(struct helper_child *hc, char *line, size_t len)
{
	struct helper_pool	*hp = hc->hc_pool;
	struct helper_reply	 rp;
	struct helper_lookup	*hl;
	char			 copy[128];
	size_t			 slot = 0;
	double			 wait;

	/* the parser works in place; keep the start for the message */
	snprintf(copy, sizeof(copy), "%.*s", (int)(len > 120 ? 120 : len),
	    line);
	if (helper_reply_parse(line, len, &rp) == -1) {
		helper_child_malformed(hc, "empty line", copy, strlen(copy));
		return -1;
	}
	if (rp.rp_result == HELPER_UNKNOWN) {
		helper_child_malformed(hc, "not OK, ERR or BH", copy,
		    strlen(copy));
		return -1;
	}
	if (hp->hp_def->hd_concurrency > 0) {
		if (rp.rp_id == NULL || rp.rp_idnum >= hc->hc_nslots ||
		    hc->hc_slots[rp.rp_idnum] == NULL) {
			helper_child_malformed(hc, "unknown channel ID", copy,
			    strlen(copy));
			return -1;
		}
		slot = (size_t)rp.rp_idnum;
	} else if (rp.rp_id != NULL || hc->hc_slots[0] == NULL) {
		helper_child_malformed(hc, rp.rp_id != NULL ?
		    "channel ID without concurrency" : "nothing was asked",
		    copy, strlen(copy));
		return -1;
	}
	hl = hc->hc_slots[slot];
	hc->hc_slots[slot] = NULL;
	hc->hc_inflight--;
	hl->hl_child = NULL;
	wait = ev_time() - hl->hl_sent;
	hp->hp_st.hs_wait_sum += wait;
	if (wait > hp->hp_st.hs_wait_max)
		hp->hp_st.hs_wait_max = wait;
	switch (rp.rp_result) {
	case HELPER_BH:
		hp->hp_st.hs_bh++;
		/* BH is retried once, then the answer is "undecided" */
		if (hl->hl_bh++ == 0 && hl->hl_sends < 3 &&
		    helper_pool_route(hp, hl) == NULL)
			break;
		helper_pool_done(hl, NULL, "bh");
		break;
	default:
		if (rp.rp_result == HELPER_OK)
			hp->hp_st.hs_ok++;
		else
			hp->hp_st.hs_err++;
		/* the cache keeps what it wants of the notes (log=, policy=) */
		helper_pool_done(hl, &rp, NULL);
		break;
	}
	return 0;
}

/* Reply lines; a line longer than HELPER_REPLY_MAX stops the child. */
static void
helper_child_read_cb(EV_P_ ev_io *io, int revents)
{
	struct helper_child	*hc = io->data;
	struct helper_pool	*hp = hc->hc_pool;
	struct buf		*rb = &hc->hc_rbuf;
	char			*p, *nl;
	size_t			 off, len, avail;
	ssize_t			 n;

	for (;;) {
		if ((p = buf_space(rb, HELPER_READ_CHUNK, &avail)) == NULL) {
			helper_child_fail(hc, "out of memory");
			return;
		}
		n = read(hc->hc_out, p, avail);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		if (n <= 0) {
			helper_child_fail(hc, n == 0 ? "closed its stdout" :
			    strerror(errno));
			return;
		}
		buf_commit(rb, (size_t)n);
		off = 0;
		while ((nl = memchr(rb->b_data + off, '\n', rb->b_len - off)) !=
		    NULL) {
			len = (size_t)(nl - (rb->b_data + off));
			if (helper_child_line(hc, rb->b_data + off, len) == -1)
				return;
			off += len + 1;
		}
		buf_drop(rb, off);
		if (rb->b_len > HELPER_REPLY_MAX) {
			helper_child_malformed(hc, "line too long", rb->b_data,
			    64);
			return;
		}
	}
	helper_pool_dispatch(hp);
}

static void
helper_child_write_cb(EV_P_ ev_io *io, int revents)
{
	struct helper_child	*hc = io->data;
	char			 buf[128];

	if (hc->hc_werrno == 0)
		helper_child_flush(hc);
	if (hc->hc_werrno != 0) {
		snprintf(buf, sizeof(buf), "write: %s", strerror(hc->hc_werrno));
		helper_child_fail(hc, buf);
	}
}

static void
helper_child_err_line(struct helper_child *hc)
{
	if (hc->hc_elen == 0)
		return;
	/* what a helper says on stderr is passed on, like Squid's cache.log */
	log_info("helper %s[%ld]: %.*s", hc->hc_pool->hp_def->hd_name,
	    (long)hc->hc_pid, (int)hc->hc_elen, hc->hc_ebuf);
	hc->hc_elen = 0;
}

/* stderr, line by line; an over-long line is logged in pieces. */
static void
helper_child_err_drain(struct helper_child *hc)
{
	char	buf[HELPER_READ_CHUNK];
	ssize_t	n, i;

	while (hc->hc_err != -1) {
		n = read(hc->hc_err, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			helper_child_err_line(hc);
			ev_io_stop(POOL_LOOP(hc->hc_pool), &hc->hc_eio);
			helper_close(&hc->hc_err);
			return;
		}
		for (i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				helper_child_err_line(hc);
				continue;
			}
			if (hc->hc_elen == sizeof(hc->hc_ebuf))
				helper_child_err_line(hc);
			hc->hc_ebuf[hc->hc_elen++] = buf[i];
		}
	}
}

static void
helper_child_err_cb(EV_P_ ev_io *io, int revents)
{
	helper_child_err_drain(io->data);
}

static void
helper_child_exit_cb(EV_P_ ev_child *cw, int revents)
{
	struct helper_child	*hc = cw->data;
	struct helper_pool	*hp = hc->hc_pool;
	char			 why[64];
	int			 st = cw->rstatus;

	helper_child_unwatch(hc);
	helper_child_err_drain(hc);
	helper_child_err_line(hc);
	if (WIFEXITED(st))
		snprintf(why, sizeof(why), "exited with status %d",
		    WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(why, sizeof(why), "killed by signal %d",
		    WTERMSIG(st));
	else
		snprintf(why, sizeof(why), "gone (status %#x)", st);
	hc->hc_reaped = 1;
	if (hc->hc_state == HC_RUNNING) {
		helper_child_fail(hc, why);
	} else
		log_info("helper %s[%ld]: %s", hp->hp_def->hd_name,
		    (long)hc->hc_pid, why);
	helper_child_free(hc);
	helper_pool_dispatch(hp);
}

/* Out of the configuration: finish the work, then close the children. */
static void
helper_pool_retire(struct helper_pool *hp)
{
	hp->hp_active = 0;
	helper_pool_dispatch(hp);
}

void
helper_pool_ref(struct helper_pool *hp)
{
	hp->hp_refs++;
}

/* A retired pool is freed by its timer once nothing refers to it. */
void
helper_pool_unref(struct helper_pool *hp)
{
	hp->hp_refs--;
}

static int
helper_pool_idle(const struct helper_pool *hp)
{
	return !hp->hp_active && hp->hp_refs == 0 && hp->hp_nlookups == 0 &&
	    TAILQ_EMPTY(&hp->hp_children);
}

/* Requests that got no answer in time: their child is stuck. */
static void
helper_pool_timeouts(struct helper_pool *hp)
{
	struct helper_child	*hc, *next;
	ev_tstamp		 now = ev_now(POOL_LOOP(hp));
	char			 why[64];
	size_t			 i;

	for (hc = TAILQ_FIRST(&hp->hp_children); hc != NULL; hc = next) {
		next = TAILQ_NEXT(hc, hc_entry);
		if (hc->hc_state != HC_RUNNING || hc->hc_inflight == 0)
			continue;
		for (i = 0; i < hc->hc_nslots; i++) {
			if (hc->hc_slots[i] == NULL ||
			    now - hc->hc_slots[i]->hl_sent <
			    hp->hp_def->hd_timeout)
				continue;
			snprintf(why, sizeof(why), "no answer in %.1f s",
			    hp->hp_def->hd_timeout);
			hp->hp_st.hs_timeouts++;
			helper_child_fail(hc, why);
			break;
		}
	}
}

static void
helper_pool_timer_cb(EV_P_ ev_timer *t, int revents)
{
	struct helper_pool	*hp = t->data;

	helper_pool_timeouts(hp);
	helper_pool_dispatch(hp);
	if (helper_pool_idle(hp))
		helper_pool_free(hp);
}

/*
 * At exit: close every child's stdin, give them a moment, kill the rest.
 * Blocking is fine here; the loop is over.
 */
static void
helper_pool_kill_all(struct helper_pool *hp)
{
	struct helper_child	*hc;
	struct helper_lookup	*hl;
	struct timespec		 ts = { 0, 20 * 1000 * 1000 };
	int			 i, left, st;
	size_t			 j;

	ev_timer_stop(POOL_LOOP(hp), &hp->hp_timer);
	TAILQ_FOREACH(hc, &hp->hp_children, hc_entry) {
		helper_close(&hc->hc_in);
		helper_child_unwatch(hc);
	}
	for (i = 0; i < 50; i++) {
		left = 0;
		TAILQ_FOREACH(hc, &hp->hp_children, hc_entry) {
			if (hc->hc_reaped)
				continue;
			if (waitpid(hc->hc_pid, &st, WNOHANG) == 0)
				left++;
			else
				hc->hc_reaped = 1;
		}
		if (left == 0)
			break;
		nanosleep(&ts, NULL);
	}
	while ((hc = TAILQ_FIRST(&hp->hp_children)) != NULL) {
		if (!hc->hc_reaped) {
			(void)kill(hc->hc_pid, SIGKILL);
			(void)waitpid(hc->hc_pid, &st, 0);
			hc->hc_reaped = 1;
		}
		helper_child_err_drain(hc);
		helper_child_err_line(hc);
		for (j = 0; j < hc->hc_nslots; j++) {
			if ((hl = hc->hc_slots[j]) == NULL)
				continue;
			hc->hc_slots[j] = NULL;
			helper_pool_done(hl, NULL, "helper_down");
		}
		if (hc->hc_state == HC_RUNNING)
			hp->hp_nrunning--;
		helper_child_free(hc);
	}
	while ((hl = TAILQ_FIRST(&hp->hp_queue)) != NULL) {
		TAILQ_REMOVE(&hp->hp_queue, hl, hl_entry);
		hp->hp_nqueued--;
		helper_pool_done(hl, NULL, "helper_down");
	}
}

/* ------------------------------------------------------------- registry */

struct helper_pool *
helper_pool_find(struct worker *w, const char *name)
{
	struct helper_pool	*hp;

	if (w->w_helpers == NULL)
		return NULL;
	TAILQ_FOREACH(hp, &w->w_helpers->hr_active, hp_entry)
		if (strcmp(hp->hp_def->hd_name, name) == 0)
			return hp;
	return NULL;
}

/*
 * Make the pools match a configuration that is now in force.  A
 * definition written exactly as before keeps its children and cache;
 * any other is started fresh, and the pools no longer named finish
 * what they have and close.
 */
void
helper_sync(struct worker *w, struct conf *cf)
{
	TAILQ_HEAD(, helper_pool)	 keep = TAILQ_HEAD_INITIALIZER(keep);
	struct helper_pools		*hr;
	struct helper_def		*hd;
	struct helper_pool		*hp;

	if ((hr = w->w_helpers) == NULL) {
		if ((hr = calloc(1, sizeof(*hr))) == NULL)
			fatal("calloc");
		TAILQ_INIT(&hr->hr_active);
		TAILQ_INIT(&hr->hr_retired);
		TAILQ_INIT(&hr->hr_ready);
		TAILQ_INIT(&hr->hr_probes);
		buf_init(&hr->hr_line, HELPER_KEY_MAX);
		w->w_helpers = hr;
	}

	if (cf->c_helpers != NULL)
		TAILQ_FOREACH(hd, &cf->c_helpers->hc_defs, hd_entry) {
			TAILQ_FOREACH(hp, &hr->hr_active, hp_entry)
				if (strcmp(hp->hp_def->hd_name,
				    hd->hd_name) == 0 &&
				    strcmp(hp->hp_def->hd_text,
				    hd->hd_text) == 0)
					break;
			if (hp != NULL) {
				TAILQ_REMOVE(&hr->hr_active, hp, hp_entry);
				TAILQ_INSERT_TAIL(&keep, hp, hp_entry);
				log_debug("helper %s: unchanged", hd->hd_name);
				continue;
			}
			if ((hp = helper_pool_new(w, hd)) == NULL) {
				log_warnx("helper %s: out of memory",
				    hd->hd_name);
				continue;
			}
			TAILQ_INSERT_TAIL(&keep, hp, hp_entry);
		}
	while ((hp = TAILQ_FIRST(&hr->hr_active)) != NULL) {
		TAILQ_REMOVE(&hr->hr_active, hp, hp_entry);
		TAILQ_INSERT_TAIL(&hr->hr_retired, hp, hp_entry);
		log_info("helper %s: definition changed or removed; its "
		    "children finish their work and close",
		    hp->hp_def->hd_name);
		helper_pool_retire(hp);
	}
	while ((hp = TAILQ_FIRST(&keep)) != NULL) {
		TAILQ_REMOVE(&keep, hp, hp_entry);
		TAILQ_INSERT_TAIL(&hr->hr_active, hp, hp_entry);
	}
}

/*
 * At exit, once every connection is closed and every waiting line
 * written: stop the children, then free the pools.
 */
void
helper_shutdown(struct worker *w)
{
	struct helper_pools	*hr = w->w_helpers;
	struct helper_pool	*hp;

	if (hr == NULL)
		return;
	helper_stats_log(w);
	if (wgroup_size(w->w_group) > 1) {
		TAILQ_FOREACH(hp, &hr->hr_active, hp_entry)
			helper_exit_add(hp);
		TAILQ_FOREACH(hp, &hr->hr_retired, hp_entry)
			helper_exit_add(hp);
	}
	helper_probe_stop(hr);
	TAILQ_FOREACH(hp, &hr->hr_active, hp_entry)
		helper_pool_kill_all(hp);
	TAILQ_FOREACH(hp, &hr->hr_retired, hp_entry)
		helper_pool_kill_all(hp);
	helper_ready_run(w);
	while ((hp = TAILQ_FIRST(&hr->hr_active)) != NULL)
		helper_pool_free(hp);
	while ((hp = TAILQ_FIRST(&hr->hr_retired)) != NULL)
		helper_pool_free(hp);
	buf_free(&hr->hr_line);
	free(hr);
	w->w_helpers = NULL;
}

static void
helper_stats_pool(const struct helper_pool *hp, const char *state)
{
	const struct helper_pool_stats	*st = &hp->hp_st;

	log_info("stats: helper %s%s: lookups %llu, cache hits %llu, "
	    "shared %llu, requests %llu, ok %llu, err %llu, bh %llu, "
	    "queue full %llu, helper down %llu, timeouts %llu, "
	    "deferred lines %llu, started %llu, restarts %llu, "
	    "malformed %llu, children %d, queued %zu, cached %zu, "
	    "answer wait avg %.3f ms max %.3f ms",
	    hp->hp_def->hd_name, state,
	    (unsigned long long)st->hs_lookups,
	    (unsigned long long)st->hs_hits,
	    (unsigned long long)st->hs_shared,
	    (unsigned long long)st->hs_requests,
	    (unsigned long long)st->hs_ok,
	    (unsigned long long)st->hs_err,
	    (unsigned long long)st->hs_bh,
	    (unsigned long long)st->hs_queue_full,
	    (unsigned long long)st->hs_down,
	    (unsigned long long)st->hs_timeouts,
	    (unsigned long long)st->hs_deferred,
	    (unsigned long long)st->hs_spawned,
	    (unsigned long long)st->hs_restarts,
	    (unsigned long long)st->hs_malformed,
	    hp->hp_nrunning, hp->hp_nqueued, hp->hp_cache.hk_table.ht_count,
	    st->hs_ok + st->hs_err + st->hs_bh > 0 ? 1000. * st->hs_wait_sum /
	    (double)(st->hs_ok + st->hs_err + st->hs_bh) : 0.,
	    1000. * st->hs_wait_max);
}

void
helper_stats_log(struct worker *w)
{
	struct helper_pools	*hr = w->w_helpers;
	struct helper_pool	*hp;

	char			 tag[64];

	if (hr == NULL)
		return;
	/* several workers: each its own pools, tagged; stats_log() sums */
	tag[0] = '\0';
	if (wgroup_size(w->w_group) > 1)
		snprintf(tag, sizeof(tag), " (worker %u)", w->w_index);
	TAILQ_FOREACH(hp, &hr->hr_active, hp_entry)
		helper_stats_pool(hp, tag);
	snprintf(tag + strlen(tag), sizeof(tag) - strlen(tag), " (retired)");
	TAILQ_FOREACH(hp, &hr->hr_retired, hp_entry)
		helper_stats_pool(hp, tag);
	if (w->w_nparked > 0)
		log_info("stats: helper: %zu log lines waiting for answers",
		    w->w_nparked);
}

static void
helper_counts_add(struct helper_counts *hc, const struct helper_pool *hp)
{
	const struct helper_pool_stats	*st = &hp->hp_st;

	hc->hm_lookups += st->hs_lookups;
	hc->hm_hits += st->hs_hits;
	hc->hm_shared += st->hs_shared;
	hc->hm_requests += st->hs_requests;
	hc->hm_ok += st->hs_ok;
	hc->hm_err += st->hs_err;
	hc->hm_bh += st->hs_bh;
	hc->hm_timeouts += st->hs_timeouts;
	hc->hm_queue_full += st->hs_queue_full;
	hc->hm_down += st->hs_down;
	hc->hm_malformed += st->hs_malformed;
	hc->hm_restarts += st->hs_restarts;
	hc->hm_queued += hp->hp_nqueued;
	hc->hm_running += (uint64_t)hp->hp_nrunning;
}

/* Was a pool of this name reported already (one earlier in the lists)? */
static int
helper_metrics_seen(const struct helper_pools *hr, const struct helper_pool *me)
{
	const struct helper_pool	*hp;

	TAILQ_FOREACH(hp, &hr->hr_active, hp_entry) {
		if (hp == me)
			return 0;
		if (strcmp(hp->hp_def->hd_name, me->hp_def->hd_name) == 0)
			return 1;
	}
	TAILQ_FOREACH(hp, &hr->hr_retired, hp_entry) {
		if (hp == me)
			return 0;
		if (strcmp(hp->hp_def->hd_name, me->hp_def->hd_name) == 0)
			return 1;
	}
	return 0;
}

static void
helper_metrics_name(const struct helper_pools *hr, const char *name,
    struct helper_counts *hc)
{
	const struct helper_pool	*hp;

	memset(hc, 0, sizeof(*hc));
	TAILQ_FOREACH(hp, &hr->hr_active, hp_entry)
		if (strcmp(hp->hp_def->hd_name, name) == 0)
			helper_counts_add(hc, hp);
	TAILQ_FOREACH(hp, &hr->hr_retired, hp_entry)
		if (strcmp(hp->hp_def->hd_name, name) == 0)
			helper_counts_add(hc, hp);
}

/*
 * A name has one set of series: a reload that changes a definition
 * starts a new pool while the old one finishes, and the two are added.
 * Once the old one is freed its counts go: Prometheus' rate() takes
 * that as a counter reset.
 */
void
helper_metrics(struct worker *w, void (*cb)(void *, const char *,
    const struct helper_counts *), void *arg)
{
	struct helper_pools	*hr = w->w_helpers;
	struct helper_pool	*hp;
	struct helper_counts	 hc;

	if (hr == NULL)
		return;
	TAILQ_FOREACH(hp, &hr->hr_active, hp_entry) {
		if (helper_metrics_seen(hr, hp))
			continue;
		helper_metrics_name(hr, hp->hp_def->hd_name, &hc);
		cb(arg, hp->hp_def->hd_name, &hc);
	}
	TAILQ_FOREACH(hp, &hr->hr_retired, hp_entry) {
		if (helper_metrics_seen(hr, hp))
			continue;
		helper_metrics_name(hr, hp->hp_def->hd_name, &hc);
		cb(arg, hp->hp_def->hd_name, &hc);
	}
}

/* An answer, OK or ERR, says the helper works; BH says it does not (yet). */
const char *
helper_unanswered(struct worker *w)
{
	struct helper_pool	*hp;

	if (w->w_helpers == NULL)
		return NULL;
	TAILQ_FOREACH(hp, &w->w_helpers->hr_active, hp_entry)
		if (hp->hp_st.hs_ok + hp->hp_st.hs_err == 0)
			return hp->hp_def->hd_name;
	return NULL;
}

/*
 * At exit, with several workers, each worker's helper counts as it stops
 * (helper_shutdown()), so that the main thread's last stats line can
 * sum them once every pool is gone.  Only the stopping path takes the
 * lock: nothing per request.
 */
static pthread_mutex_t		 helper_exit_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct helper_counts	*helper_exit_counts;
static char			**helper_exit_names;
static size_t			 helper_nexit;

static void
helper_exit_add(const struct helper_pool *hp)
{
	struct helper_counts	*c, one;
	char			**n;
	uint64_t		*du;
	const uint64_t		*su;
	size_t			 i, k;

	memset(&one, 0, sizeof(one));
	helper_counts_add(&one, hp);
	pthread_mutex_lock(&helper_exit_mtx);
	for (i = 0; i < helper_nexit; i++)
		if (strcmp(helper_exit_names[i], hp->hp_def->hd_name) == 0)
			break;
	if (i == helper_nexit) {
		c = reallocarray(helper_exit_counts, i + 1, sizeof(*c));
		if (c != NULL)
			helper_exit_counts = c;
		n = reallocarray(helper_exit_names, i + 1, sizeof(*n));
		if (n != NULL)
			helper_exit_names = n;
		if (c == NULL || n == NULL ||
		    (n[i] = strdup(hp->hp_def->hd_name)) == NULL) {
			pthread_mutex_unlock(&helper_exit_mtx);
			return;
		}
		memset(&c[i], 0, sizeof(c[i]));
		helper_nexit++;
	}
	du = (uint64_t *)&helper_exit_counts[i];
	su = (const uint64_t *)&one;
	for (k = 0; k < sizeof(one) / sizeof(uint64_t); k++)
		du[k] += su[k];
	pthread_mutex_unlock(&helper_exit_mtx);
}

void
helper_exit_view(void (*fn)(void *, const char *,
    const struct helper_counts *), void *arg)
{
	size_t	i;

	pthread_mutex_lock(&helper_exit_mtx);
	for (i = 0; i < helper_nexit; i++) {
		fn(arg, helper_exit_names[i], &helper_exit_counts[i]);
		free(helper_exit_names[i]);
	}
	free(helper_exit_names);
	free(helper_exit_counts);
	helper_exit_names = NULL;
	helper_exit_counts = NULL;
	helper_nexit = 0;
	pthread_mutex_unlock(&helper_exit_mtx);
}
