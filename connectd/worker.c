/* worker.c: `workers N`: the event loops, their threads, and the few things that cross between them */
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connectd.h"

#define SCRATCH_LEN		(256 * 1024)
#define SNAPSHOT_WAIT		2.0	/* seconds the main thread waits */

/*
 * Messages from the main thread to a worker (w_msgs, under g_mtx), each
 * with an ev_async_send(): the only ways a worker learns of a signal.
 */
#define WMSG_CONF	0x01	/* adopt w_newconf, w_addl, w_dell */
#define WMSG_STOP	0x02	/* SIGTERM: drain for shutdown_lifetime */
#define WMSG_KILL	0x04	/* a second SIGTERM, or the grace ran out */
#define WMSG_SNAP	0x08	/* fill w_view (metrics_snapshot()) */
#define WMSG_STATS	0x10	/* SIGUSR1: log the helper pools' counts */
#define WMSG_LIMIT	0x20	/* max_connections has room again */

/*
 * The workers of the process.  g_mtx guards w_msgs and what comes with
 * a message, w_exited, w_view_busy and g_dead; g_counted is an atomic
 * of its own.  Nothing here is touched per tunnel but g_counted, at
 * accept and at close.
 */
struct wgroup {
	unsigned		 g_n;
	struct worker		**g_w;		/* g_w[0] runs in main() */
	pthread_t		*g_tid;
	pthread_mutex_t		 g_mtx;
	pthread_cond_t		 g_cond;	/* a view is ready */
	unsigned		 g_counted;	/* atomic: max_connections */
	struct conf		*g_dead;	/* confs for the main thread */
	ev_async		 g_async;	/* on worker 0's loop */
	int			 g_started;
};

static __thread struct worker	*worker_self;

static void	worker_turn_end_cb(EV_P_ ev_prepare *, int);
static void	worker_ctl_cb(EV_P_ ev_async *, int);
unsigned	wgroup_running(struct wgroup *);

/*
 * `workers auto`: the CPUs this process may run on (its affinity mask,
 * as a container's cpuset sets it), else those online.
 */
unsigned
workers_count(const struct conf *cf)
{
	cpu_set_t	 set;
	long		 n;

	if (cf->c_workers != 0)
		return cf->c_workers;
	if (sched_getaffinity(0, sizeof(set), &set) == 0 &&
	    (n = CPU_COUNT(&set)) > 0)
		return (unsigned)n;
	if ((n = sysconf(_SC_NPROCESSORS_ONLN)) > 0)
		return (unsigned)n;
	return 1;
}

struct worker *
worker_create(struct conf *conf, struct wgroup *g, unsigned index)
{
	struct worker	*w;
	char		 err[ERRBUF_LEN];

	if ((w = calloc(1, sizeof(*w))) == NULL)
		fatal("calloc");
	/*
	 * One worker keeps the default loop, as connectd always had.  With
	 * several, every loop is a new one: libev's default loop reaps
	 * every child (waitpid(-1) on SIGCHLD), which would take the exit
	 * status of another worker's helpers; helper_pool.c then watches
	 * its children with pidfds instead.
	 */
	w->w_loop = g->g_n == 1 ? ev_default_loop(EVFLAG_AUTO) :
	    ev_loop_new(EVFLAG_AUTO);
	if (w->w_loop == NULL)
		fatalx("cannot initialise the event loop");
	w->w_index = index;
	w->w_group = g;
	/* worker i gives ids i + N, i + 2N ...: one worker 1, 2, 3 ... */
	w->w_next_id = g->g_n > 1 ? index : 0;
	w->w_id_step = g->g_n;
	metrics_init(w);
	w->w_conf = conf_ref(conf);
	/* the prefix of every line's uid: unique to this worker's life */
	if (logrec_instance(w->w_instance, sizeof(w->w_instance)) == -1)
		log_warnx("getrandom failed: line uids come from the time");
	w->w_scratch_len = SCRATCH_LEN;
	if ((w->w_scratch = malloc(w->w_scratch_len)) == NULL ||
	    (w->w_stage = sink_stage_new()) == NULL)
		fatal("malloc");
	TAILQ_INIT(&w->w_conns);
	TAILQ_INIT(&w->w_closed);
	TAILQ_INIT(&w->w_listeners);
	TAILQ_INIT(&w->w_parked);
	TAILQ_INIT(&w->w_addl);
	TAILQ_INIT(&w->w_dell);
	ev_prepare_init(&w->w_turn_end, worker_turn_end_cb);
	w->w_turn_end.data = w;
	ev_prepare_start(w->w_loop, &w->w_turn_end);
	ev_async_init(&w->w_ctl, worker_ctl_cb);
	w->w_ctl.data = w;
	ev_async_start(w->w_loop, &w->w_ctl);
	ev_init(&w->w_grace, NULL);
	w->w_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	w->w_auto_max = limit_auto_max();
	if (resolve_init(w, conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	ifaddr_init(w);
	return w;
}

/* Free the confs whose last reference went this turn (main thread). */
static void
worker_bury(struct conf *c)
{
	struct conf	*next;

	for (; c != NULL; c = next) {
		next = c->c_dead_next;
		conf_destroy(c);
	}
}

void
worker_free(struct worker *w)
{
	struct conf	*dead;

	ev_prepare_stop(w->w_loop, &w->w_turn_end);
	ev_async_stop(w->w_loop, &w->w_ctl);
	ev_timer_stop(w->w_loop, &w->w_grace);
	listener_close_all(w);
	forward_pool_free(w);
	relay_pool_free(w);
	admin_free(w);
	metrics_free(w);
	metrics_view_free(&w->w_view);
	limit_free(w);
	ifaddr_free(w);
	resolve_free(w);
	if (w->w_spare_fd != -1)
		close(w->w_spare_fd);
	sink_stage_free(w->w_stage);
	w->w_stage = NULL;
	if (worker_self == w)
		worker_self = NULL;
	conf_unref(w->w_conf);
	if (w->w_newconf != NULL)
		conf_unref(w->w_newconf);
	listener_list_free(&w->w_addl);
	listener_list_free(&w->w_dell);
	dead = w->w_dead;
	w->w_dead = NULL;
	worker_bury(dead);
	if (w->w_index != 0 || w->w_group->g_n > 1)
		ev_loop_destroy(w->w_loop);
	free(w->w_scratch);
	free(w);
}

/*
 * conf.c: c's last reference is gone.  Inside a worker the conf is
 * freed at the end of the turn, once the lines rendered with it are
 * handed to the writers (its sinks must outlive them), and by the main
 * thread, which alone opens and closes sinks.  Returns 0 when it is
 * taken care of, -1 when the caller should free it now.
 */
int
worker_conf_dead(struct conf *c)
{
	if (worker_self == NULL)
		return -1;
	c->c_dead_next = worker_self->w_dead;
	worker_self->w_dead = c;
	return 0;
}

/*
 * The end of every loop turn, before the loop sleeps: the safe point for
 * work that must not run inside another module's callback.  Helper
 * answers wake connections and complete log lines; connections closed
 * during the turn are freed; the turn's log lines go to the writers, a
 * batch per output (one lock each, not one a line).
 */
static void
worker_turn_end_cb(EV_P_ ev_prepare *p, int revents)
{
	struct worker	*w = p->data;

	helper_ready_run(w);
	conn_reap(w);
	worker_flush(w);
}

void
worker_flush(struct worker *w)
{
	struct wgroup	*g = w->w_group;
	struct conf	*dead, *last;

	sink_stage_flush(w->w_stage);
	if ((dead = w->w_dead) == NULL)
		return;
	w->w_dead = NULL;
	if (w->w_index == 0) {
		worker_bury(dead);
		return;
	}
	for (last = dead; last->c_dead_next != NULL; last = last->c_dead_next)
		;
	pthread_mutex_lock(&g->g_mtx);
	last->c_dead_next = g->g_dead;
	g->g_dead = dead;
	pthread_mutex_unlock(&g->g_mtx);
	ev_async_send(g->g_w[0]->w_loop, &g->g_async);
}

/* -------------------------------------------------- max_connections */

/*
 * max_connections is one count for the process, an atomic: a worker
 * adds at accept and takes away at close, and stops accepting at the
 * limit.  Two workers that accept at once may each take the last slot:
 * the limit can be passed by at most N - 1 (each stops after one).
 * One that frees a slot at the limit wakes the others (WMSG_LIMIT), as
 * the one loop resumed accepting when a connection closed.
 */
void
worker_count(struct worker *w, int delta)
{
	struct wgroup	*g = w->w_group;
	unsigned	 was, max, i;

	w->w_counted += (unsigned)delta;
	if (delta > 0) {
		__atomic_fetch_add(&g->g_counted, 1, __ATOMIC_RELAXED);
		return;
	}
	was = __atomic_fetch_sub(&g->g_counted, 1, __ATOMIC_RELAXED);
	if (g->g_n == 1)
		return;
	max = w->w_conf->c_max_connections ? w->w_conf->c_max_connections :
	    w->w_auto_max;
	if (was < max)
		return;
	for (i = 0; i < g->g_n; i++)
		if (g->g_w[i] != w)
			worker_post(g->g_w[i], WMSG_LIMIT);
}

unsigned
worker_counted(const struct worker *w)
{
	return __atomic_load_n(&w->w_group->g_counted, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ messages */

void
worker_post(struct worker *w, int msg)
{
	struct wgroup	*g = w->w_group;

	pthread_mutex_lock(&g->g_mtx);
	w->w_msgs |= msg;
	pthread_mutex_unlock(&g->g_mtx);
	ev_async_send(w->w_loop, &w->w_ctl);
}

static void
worker_grace_cb(EV_P_ ev_timer *t, int revents)
{
	struct worker	*w = t->data;

	conn_shutdown_all(w);
	ev_break(EV_A, EVBREAK_ALL);
}

/* SIGTERM, in a worker's thread: what signal_cb() does for worker 0. */
static void
worker_stop(struct worker *w, int now)
{
	double	 grace = w->w_conf->c_shutdown_lifetime;

	if (!w->w_stopping) {
		w->w_stopping = 1;
		listener_close_all(w);
		conn_drain(w);
	}
	if (now || TAILQ_EMPTY(&w->w_conns) || grace <= 0.) {
		conn_shutdown_all(w);
		ev_break(w->w_loop, EVBREAK_ALL);
		return;
	}
	if (!ev_is_active(&w->w_grace)) {
		ev_timer_init(&w->w_grace, worker_grace_cb, grace, 0.);
		w->w_grace.data = w;
		ev_timer_start(w->w_loop, &w->w_grace);
	}
}

/* A new configuration, in the worker's thread (reload() for worker 0). */
static void
worker_adopt(struct worker *w, struct conf *conf, struct listener_list *add,
    struct listener_list *del)
{
	listener_adopt(w, add, del);
	if (conf != NULL)
		worker_conf_adopt(w, conf);
}

void
worker_conf_adopt(struct worker *w, struct conf *conf)
{
	struct conf	*old = w->w_conf;

	resolve_reconfigure(w, conf);
	helper_sync(w, conf);
	w->w_conf = conf;
	conf_unref(old);
	listener_limit(w);
	if (conf->c_metrics != NULL && !w->w_helpers_ready)
		helper_probe_start(w);
}

static void
worker_ctl_cb(EV_P_ ev_async *a, int revents)
{
	struct worker		*w = a->data;
	struct wgroup		*g = w->w_group;
	struct listener_list	 add = TAILQ_HEAD_INITIALIZER(add);
	struct listener_list	 del = TAILQ_HEAD_INITIALIZER(del);
	struct listener		*l;
	struct conf		*conf;
	int			 msgs;

	pthread_mutex_lock(&g->g_mtx);
	msgs = w->w_msgs;
	w->w_msgs = 0;
	conf = w->w_newconf;
	w->w_newconf = NULL;
	while ((l = TAILQ_FIRST(&w->w_addl)) != NULL) {
		TAILQ_REMOVE(&w->w_addl, l, l_entry);
		TAILQ_INSERT_TAIL(&add, l, l_entry);
	}
	while ((l = TAILQ_FIRST(&w->w_dell)) != NULL) {
		TAILQ_REMOVE(&w->w_dell, l, l_entry);
		TAILQ_INSERT_TAIL(&del, l, l_entry);
	}
	pthread_mutex_unlock(&g->g_mtx);

	if (msgs & WMSG_CONF) {
		if (w->w_stopping) {
			listener_list_free(&add);
			listener_list_free(&del);
			conf_unref(conf);
		} else
			worker_adopt(w, conf, &add, &del);
	}
	if (msgs & WMSG_LIMIT)
		listener_limit(w);
	if (msgs & WMSG_STATS)
		helper_stats_log(w);
	if (msgs & WMSG_SNAP) {
		metrics_snapshot(w, &w->w_view);
		pthread_mutex_lock(&g->g_mtx);
		w->w_view_busy = 0;
		pthread_cond_broadcast(&g->g_cond);
		pthread_mutex_unlock(&g->g_mtx);
	}
	if (msgs & (WMSG_STOP | WMSG_KILL))
		worker_stop(w, (msgs & WMSG_KILL) != 0);
}

/* ------------------------------------------------------------- threads */

static void *
worker_main(void *arg)
{
	struct worker	*w = arg;
	struct wgroup	*g = w->w_group;

	worker_self = w;
	helper_sync(w, w->w_conf);
	if (w->w_conf->c_metrics != NULL)
		helper_probe_start(w);
	ev_run(w->w_loop, 0);
	/* every tunnel gets its line, then every line waiting for helpers */
	conn_shutdown_all(w);
	accesslog_shutdown(w);
	conn_reap(w);
	helper_shutdown(w);
	worker_flush(w);
	pthread_mutex_lock(&g->g_mtx);
	w->w_exited = 1;
	pthread_cond_broadcast(&g->g_cond);
	pthread_mutex_unlock(&g->g_mtx);
	ev_async_send(g->g_w[0]->w_loop, &g->g_async);
	return NULL;
}

/* Worker 0's loop: confs to free, workers that ended. */
static void
wgroup_async_cb(EV_P_ ev_async *a, int revents)
{
	struct wgroup	*g = a->data;
	struct conf	*dead;

	pthread_mutex_lock(&g->g_mtx);
	dead = g->g_dead;
	g->g_dead = NULL;
	pthread_mutex_unlock(&g->g_mtx);
	worker_bury(dead);
	/* the last worker drained: worker 0, drained too, need not wait */
	if (g->g_w[0]->w_stopping && TAILQ_EMPTY(&g->g_w[0]->w_conns) &&
	    wgroup_running(g) == 0)
		ev_break(EV_A, EVBREAK_ALL);
}

/*
 * The group and worker 0, in the main thread, which also handles the
 * signals, the metrics_port, and every open and close of a log output.
 */
struct wgroup *
wgroup_new(struct conf *conf)
{
	struct wgroup	*g;
	unsigned	 i;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		fatal("calloc");
	g->g_n = workers_count(conf);
	if ((g->g_w = calloc(g->g_n, sizeof(*g->g_w))) == NULL ||
	    (g->g_tid = calloc(g->g_n, sizeof(*g->g_tid))) == NULL)
		fatal("calloc");
	pthread_mutex_init(&g->g_mtx, NULL);
	pthread_cond_init(&g->g_cond, NULL);
	for (i = 0; i < g->g_n; i++)
		g->g_w[i] = worker_create(conf, g, i);
	worker_self = g->g_w[0];
	ev_async_init(&g->g_async, wgroup_async_cb);
	g->g_async.data = g;
	ev_async_start(g->g_w[0]->w_loop, &g->g_async);
	return g;
}

unsigned
wgroup_size(const struct wgroup *g)
{
	return g->g_n;
}

struct worker *
wgroup_worker(struct wgroup *g, unsigned i)
{
	return i < g->g_n ? g->g_w[i] : NULL;
}

/*
 * Bind every http_port: with one worker as always (listener_sync()),
 * with several a SO_REUSEPORT group per port (listener_group_sync()),
 * whose per-worker sockets are handed over (with conf, a reference) to
 * each worker.  On a failure nothing changes: -1 and err.
 */
int
wgroup_listen(struct wgroup *g, struct conf *conf, char *err, size_t errlen)
{
	struct listener_list	*add, *del;
	struct listener		*l;
	unsigned		 i;
	int			 rv = 0;

	if (g->g_n == 1)
		return listener_sync(g->g_w[0], conf, err, errlen);
	if ((add = calloc(g->g_n, sizeof(*add))) == NULL ||
	    (del = calloc(g->g_n, sizeof(*del))) == NULL) {
		free(add);
		snprintf(err, errlen, "http_port: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < g->g_n; i++) {
		TAILQ_INIT(&add[i]);
		TAILQ_INIT(&del[i]);
	}
	if (listener_group_sync(g->g_n, conf, add, del, err, errlen) == -1) {
		rv = -1;
		goto done;
	}
	/* worker 0 now; the others at their next turn, or as they start */
	listener_adopt(g->g_w[0], &add[0], &del[0]);
	for (i = 1; i < g->g_n; i++) {
		pthread_mutex_lock(&g->g_mtx);
		while ((l = TAILQ_FIRST(&add[i])) != NULL) {
			TAILQ_REMOVE(&add[i], l, l_entry);
			TAILQ_INSERT_TAIL(&g->g_w[i]->w_addl, l, l_entry);
		}
		while ((l = TAILQ_FIRST(&del[i])) != NULL) {
			TAILQ_REMOVE(&del[i], l, l_entry);
			TAILQ_INSERT_TAIL(&g->g_w[i]->w_dell, l, l_entry);
		}
		g->g_w[i]->w_msgs |= WMSG_CONF;
		pthread_mutex_unlock(&g->g_mtx);
		/* a loop not running yet gets it when it starts */
		ev_async_send(g->g_w[i]->w_loop, &g->g_w[i]->w_ctl);
	}
 done:
	free(add);
	free(del);
	return rv;
}

/* Reload: every other worker adopts conf (takes a reference each). */
void
wgroup_reload(struct wgroup *g, struct conf *conf)
{
	struct worker	*w;
	unsigned	 i;

	for (i = 1; i < g->g_n; i++) {
		w = g->g_w[i];
		pthread_mutex_lock(&g->g_mtx);
		if (w->w_newconf != NULL)
			conf_unref(w->w_newconf);
		w->w_newconf = conf_ref(conf);
		w->w_msgs |= WMSG_CONF;
		pthread_mutex_unlock(&g->g_mtx);
		ev_async_send(w->w_loop, &w->w_ctl);
	}
}

/* Start workers 1..N-1, after the privilege drop; 0, or -1 and err. */
int
wgroup_start(struct wgroup *g, char *err, size_t errlen)
{
	sigset_t	 all, old;
	unsigned	 i;
	int		 rv;

	/* signals stay with worker 0's loop, in the main thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 1; i < g->g_n; i++) {
		if ((rv = pthread_create(&g->g_tid[i], NULL, worker_main,
		    g->g_w[i])) != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			snprintf(err, errlen, "cannot start worker %u: %s", i,
			    strerror(rv));
			return -1;
		}
		g->g_started = (int)i;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (g->g_n > 1)
		log_info("%u workers", g->g_n);
	return 0;
}

/* SIGTERM (now: a second one, or worker 0's grace ran out). */
void
wgroup_stop(struct wgroup *g, int now)
{
	unsigned	 i;

	for (i = 1; i < g->g_n; i++)
		worker_post(g->g_w[i], now ? WMSG_KILL : WMSG_STOP);
}

void
wgroup_stats(struct wgroup *g)
{
	unsigned	 i;

	for (i = 1; i < g->g_n; i++)
		worker_post(g->g_w[i], WMSG_STATS);
}

/* Workers (other than 0) whose loop has not ended. */
unsigned
wgroup_running(struct wgroup *g)
{
	unsigned	 i, n = 0;

	pthread_mutex_lock(&g->g_mtx);
	for (i = 1; i <= (unsigned)g->g_started; i++)
		if (!g->g_w[i]->w_exited)
			n++;
	pthread_mutex_unlock(&g->g_mtx);
	return n;
}

/* At exit, after wgroup_running() says 0: join and free them all. */
void
wgroup_free(struct wgroup *g)
{
	unsigned	 i;

	for (i = 1; i <= (unsigned)g->g_started; i++)
		pthread_join(g->g_tid[i], NULL);
	wgroup_async_cb(g->g_w[0]->w_loop, &g->g_async, 0);
	ev_async_stop(g->g_w[0]->w_loop, &g->g_async);
	for (i = g->g_n; i-- > 0; )
		worker_free(g->g_w[i]);
	pthread_cond_destroy(&g->g_cond);
	pthread_mutex_destroy(&g->g_mtx);
	free(g->g_tid);
	free(g->g_w);
	free(g);
}

/*
 * /metrics, /readyz and SIGUSR1: worker 0's view, and each other
 * worker's taken in its own thread at its next loop turn (WMSG_SNAP)
 * while this thread waits, added up.  A worker that does not answer in
 * SNAPSHOT_WAIT seconds is left out (and said so): its view is not read
 * while it may still be written.  Returns the workers left out.
 */
unsigned
wgroup_view(struct wgroup *g, struct metrics_view *sum)
{
	struct timespec	 deadline;
	struct worker	*w;
	unsigned	 i, missing = 0;
	int		 wait;

	memset(sum, 0, sizeof(*sum));
	metrics_snapshot(g->g_w[0], sum);
	if (g->g_n == 1)
		return 0;
	for (i = 1; i <= (unsigned)g->g_started; i++) {
		w = g->g_w[i];
		pthread_mutex_lock(&g->g_mtx);
		if (!w->w_exited && !w->w_view_busy) {
			w->w_view_busy = 1;
			w->w_msgs |= WMSG_SNAP;
			ev_async_send(w->w_loop, &w->w_ctl);
		}
		pthread_mutex_unlock(&g->g_mtx);
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += (time_t)SNAPSHOT_WAIT;
	for (i = 1; i < g->g_n; i++) {
		w = g->g_w[i];
		pthread_mutex_lock(&g->g_mtx);
		while (w->w_view_busy && !w->w_exited &&
		    pthread_cond_timedwait(&g->g_cond, &g->g_mtx, &deadline) !=
		    ETIMEDOUT)
			;
		wait = w->w_view_busy || i > (unsigned)g->g_started;
		/* its loop has ended: nothing moves, read it from here */
		if (!wait && w->w_exited)
			metrics_snapshot(w, &w->w_view);
		pthread_mutex_unlock(&g->g_mtx);
		if (wait) {
			missing++;
			if (sum->v_unready[0] == '\0')
				snprintf(sum->v_unready, sizeof(sum->v_unready),
				    "worker %u is not running", i);
			continue;
		}
		metrics_view_add(sum, &w->w_view);
	}
	if (missing > 0 && g->g_started > 0)
		log_warnx("metrics: %u of %u workers did not answer", missing,
		    g->g_n);
	return missing;
}

/*
 * Why /readyz says 503, or NULL: every worker listens, has its helpers
 * answered, and is not shutting down.  The text lives in the worker.
 */
const char *
worker_unready(struct worker *w)
{
	struct metrics_view	 v;

	if (w->w_group->g_n == 1 || w->w_index != 0)
		return admin_unready(w);
	(void)wgroup_view(w->w_group, &v);
	snprintf(w->w_unready, sizeof(w->w_unready), "%s", v.v_unready);
	metrics_view_free(&v);
	return w->w_unready[0] != '\0' ? w->w_unready : NULL;
}
