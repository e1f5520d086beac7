/* connectd.c: startup, signals, configuration reload and shutdown */
#include <sys/types.h>
#include <sys/resource.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ares.h>

#include "connectd.h"

#define SINK_FLUSH_TIMEOUT	5.0

static ev_signal	 sig_term, sig_int, sig_hup, sig_usr1;
static ev_timer		 shutdown_timer;

static void
usage(void)
{
	fprintf(stderr, "usage: connectd [-dtvV] [-f file]\n");
	exit(2);
}

/* SIGUSR1 and exit: the counters of every worker, summed. */
static void
stats_log(struct worker *w)
{
	struct metrics_view	 v;
	struct stats		*st = &v.v_stats;
	char			 by[256];
	size_t			 n = 0;
	unsigned		 i;
	int			 k;

	(void)wgroup_view(w->w_group, &v);
	/* at exit the workers' pools are gone: their last counts */
	if (v.v_nhelpers == 0)
		helper_exit_view(metrics_view_helper, &v);
	by[0] = '\0';
	/* with workers: which loop took how many (SO_REUSEPORT's spread) */
	for (i = 0; v.v_nworkers > 1 && i < v.v_nworkers && n < sizeof(by);
	    i++) {
		k = snprintf(by + n, sizeof(by) - n, "%s%llu", i ? "/" : "",
		    (unsigned long long)v.v_accepted[i]);
		if (k < 0)
			break;
		n += (size_t)k;
	}
	log_info("stats: accepted %llu, active %llu, tunnels %llu, "
	    "refused %llu, accept errors %llu, bytes up %llu, down %llu%s%s",
	    (unsigned long long)st->st_accepted,
	    (unsigned long long)st->st_active,
	    (unsigned long long)st->st_tunnels,
	    (unsigned long long)st->st_refused,
	    (unsigned long long)st->st_accept_errors,
	    (unsigned long long)st->st_bytes_up,
	    (unsigned long long)st->st_bytes_down,
	    by[0] != '\0' ? ", accepted by worker " : "", by);
	/* and each helper's, summed: the per-worker lines follow, tagged */
	for (i = 0; v.v_nworkers > 1 && i < v.v_nhelpers; i++) {
		const struct helper_counts *hc = &v.v_helpers[i].vh_counts;

		log_info("stats: helper %s: lookups %llu, cache hits %llu, "
		    "shared %llu, requests %llu, ok %llu, err %llu, bh %llu, "
		    "queue full %llu, helper down %llu, timeouts %llu, "
		    "restarts %llu, malformed %llu, children %llu, queued %llu "
		    "(%u workers)", v.v_helpers[i].vh_name,
		    (unsigned long long)hc->hm_lookups,
		    (unsigned long long)hc->hm_hits,
		    (unsigned long long)hc->hm_shared,
		    (unsigned long long)hc->hm_requests,
		    (unsigned long long)hc->hm_ok,
		    (unsigned long long)hc->hm_err,
		    (unsigned long long)hc->hm_bh,
		    (unsigned long long)hc->hm_queue_full,
		    (unsigned long long)hc->hm_down,
		    (unsigned long long)hc->hm_timeouts,
		    (unsigned long long)hc->hm_restarts,
		    (unsigned long long)hc->hm_malformed,
		    (unsigned long long)hc->hm_running,
		    (unsigned long long)hc->hm_queued, v.v_nworkers);
	}
	log_info("stats: splice: tunnels %llu, bytes %llu, pipes in use %u, "
	    "pooled %u, pool exhausted %llu",
	    (unsigned long long)v.v_pipes.rpl_tunnels,
	    (unsigned long long)v.v_pipes.rpl_bytes, v.v_pipes.rpl_used,
	    v.v_pipes.rpl_nfree, (unsigned long long)v.v_pipes.rpl_exhausted);
	metrics_view_free(&v);
	helper_stats_log(w);
	wgroup_stats(w->w_group);
	sink_stats_log();
}

/*
 * SIGHUP: a new configuration replaces the old only if it parses, its
 * logs open and its ports bind.  Established tunnels keep running.
 */
static void
reload(struct worker *w)
{
	struct conf	*conf = NULL, *old = w->w_conf;
	char		 err[ERRBUF_LEN], err2[ERRBUF_LEN];
	unsigned	 n = wgroup_size(w->w_group);

	w->w_metrics.m_reloads++;
	w->w_metrics.m_reload_failed = 1;
	if (conf_load(old->c_path, &conf, err, sizeof(err)) == -1) {
		w->w_metrics.m_reload_failures++;
		log_warnx("reload refused, keeping the running configuration: "
		    "%s", err);
		return;
	}
	/* as Squid: the number of workers is set at start (a restart) */
	if (workers_count(conf) != n) {
		w->w_metrics.m_reload_failures++;
		log_warnx("reload refused, keeping the running configuration: "
		    "workers %u: running %u; changing workers needs a restart",
		    workers_count(conf), n);
		conf_unref(conf);
		return;
	}
	if (accesslog_open(conf, err, sizeof(err)) == -1 ||
	    admin_sync(w, conf, err, sizeof(err)) == -1) {
		w->w_metrics.m_reload_failures++;
		log_warnx("reload refused, keeping the running configuration: "
		    "%s", err);
		conf_unref(conf);
		return;
	}
	if (wgroup_listen(w->w_group, conf, err, sizeof(err)) == -1) {
		/* the metrics_port goes back where it was */
		if (admin_sync(w, old, err2, sizeof(err2)) == -1)
			log_warnx("%s", err2);
		w->w_metrics.m_reload_failures++;
		log_warnx("reload refused, keeping the running configuration: "
		    "%s", err);
		conf_unref(conf);
		return;
	}
	w->w_metrics.m_reload_failed = 0;
	wgroup_reload(w->w_group, conf);
	worker_conf_adopt(w, conf);
	log_info("configuration reloaded from %s", conf->c_path);
}

static void
shutdown_timer_cb(EV_P_ ev_timer *t, int revents)
{
	struct worker	*w = t->data;

	wgroup_stop(w->w_group, 1);
	conn_shutdown_all(w);
	ev_break(EV_A, EVBREAK_ALL);
}

static void
signal_cb(EV_P_ ev_signal *s, int revents)
{
	struct worker	*w = s->data;
	struct metrics_view v;
	uint64_t	 active;
	double		 grace;

	switch (s->signum) {
	case SIGTERM:
	case SIGINT:
		if (w->w_stopping) {
			shutdown_timer_cb(EV_A, &shutdown_timer, 0);
			return;
		}
		/* every worker's connections (one loop: worker 0's) */
		(void)wgroup_view(w->w_group, &v);
		active = v.v_stats.st_active;
		metrics_view_free(&v);
		log_info("signal %d: shutting down, %llu connections open",
		    s->signum, (unsigned long long)active);
		/*
		 * As Squid does (tried with 5.7): the ports close, so that
		 * new clients are refused, while what is open carries on
		 * for shutdown_lifetime; /readyz says 503 meanwhile.  The
		 * process exits as soon as the last one closes.
		 */
		w->w_stopping = 1;
		listener_close_all(w);
		wgroup_stop(w->w_group, 0);
		conn_drain(w);
		grace = w->w_conf->c_shutdown_lifetime;
		/*
		 * systemd's stop timeout is extended to cover the drain and
		 * the log flush, whatever shutdown_lifetime says.
		 */
		sdnotify("STOPPING=1\nSTATUS=shutting down, %llu connections "
		    "open\nEXTEND_TIMEOUT_USEC=%llu",
		    (unsigned long long)active,
		    (unsigned long long)((grace > 0. ? grace : 0.) +
		    SINK_FLUSH_TIMEOUT + 5.) * 1000000ULL);
		if (active == 0 || grace <= 0.) {
			if (grace <= 0.)
				wgroup_stop(w->w_group, 1);
			conn_shutdown_all(w);
			ev_break(EV_A, EVBREAK_ALL);
			return;
		}
		log_info("draining for up to %.3g seconds (shutdown_lifetime); "
		    "another SIGTERM ends it now", grace);
		ev_timer_set(&shutdown_timer, grace, 0.);
		ev_timer_start(EV_A, &shutdown_timer);
		break;
	case SIGHUP:
		if (w->w_stopping)
			break;
		/* as Type=notify-reload expects (systemd 253 and later) */
		sdnotify("RELOADING=1\nMONOTONIC_USEC=%llu",
		    sdnotify_monotonic_usec());
		reload(w);
		sdnotify("READY=1\nSTATUS=%s", w->w_metrics.m_reload_failed ?
		    "reload refused, running the previous configuration "
		    "(see the log)" : "configuration reloaded");
		break;
	case SIGUSR1:
		sink_reopen_all();
		stats_log(w);
		break;
	}
}

static void
raise_nofile(void)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char *argv[])
{
	struct wgroup	*g;
	struct worker	*w;
	struct conf	*conf = NULL;
	const char	*path = CONNECTD_CONF;
	char		 err[ERRBUF_LEN];
	int		 ch, check = 0, verbose = 0, debug = 0;

	while ((ch = getopt(argc, argv, "df:htvV")) != -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'f':
			path = optarg;
			break;
		case 't':
			check = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'V':
			printf("connectd %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	diag_init(argv[0], debug);

	if (conf_load(path, &conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "connectd: %s\n", err);
		return 1;
	}
	if (check) {
		if (accesslog_check(conf, err, sizeof(err)) == -1) {
			fprintf(stderr, "connectd: %s\n", err);
			conf_unref(conf);
			return 1;
		}
		if (verbose)
			conf_dump(conf, stdout);
		fprintf(stderr, "connectd: %s: configuration OK\n", path);
		conf_unref(conf);
		return 0;
	}

	/* before anything is forked or spawned: helpers must not see it */
	if (sdnotify_init(err, sizeof(err)) == -1)
		log_warnx("%s", err);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		fatalx("c-ares initialisation failed");

	/* built once here, before any worker thread renders with them */
	(void)logformat_builtin("json");
	(void)logformat_builtin("squid");
	g = wgroup_new(conf);
	w = wgroup_worker(g, 0);
	conf_unref(conf);	/* each worker holds its own reference */
	/* before the writer threads: the opener is a plain fork */
	if (opener_start(conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (accesslog_open(conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (wgroup_listen(g, conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	w->w_listening = 1;
	if (admin_sync(w, conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (limit_drop_privileges(conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	/* after the privilege drop: no thread of ours ever runs as root */
	if (wgroup_start(g, err, sizeof(err)) == -1)
		fatalx("%s", err);
	helper_sync(w, conf);
	/* only /readyz needs a helper to have answered before any request */
	if (conf->c_metrics != NULL)
		helper_probe_start(w);

	ev_signal_init(&sig_term, signal_cb, SIGTERM);
	ev_signal_init(&sig_int, signal_cb, SIGINT);
	ev_signal_init(&sig_hup, signal_cb, SIGHUP);
	ev_signal_init(&sig_usr1, signal_cb, SIGUSR1);
	sig_term.data = sig_int.data = sig_hup.data = sig_usr1.data = w;
	ev_signal_start(w->w_loop, &sig_term);
	ev_signal_start(w->w_loop, &sig_int);
	ev_signal_start(w->w_loop, &sig_hup);
	ev_signal_start(w->w_loop, &sig_usr1);
	ev_init(&shutdown_timer, shutdown_timer_cb);
	shutdown_timer.data = w;
	log_info("connectd %s started with %s", PACKAGE_VERSION, path);
	/*
	 * Ready for systemd only now: the ports are bound, the logs open,
	 * privileges dropped, helpers started, and SIGHUP is handled (its
	 * default action would end a process reloaded too early).  Helper
	 * answers are not awaited: a lookup never delays a tunnel.
	 */
	sdnotify("READY=1\nSTATUS=accepting connections");

	ev_run(w->w_loop, 0);
	/*
	 * Worker 0 is done; the others may still drain: the loop goes on
	 * (signals, their conf releases) until each has ended its own.
	 */
	while (wgroup_running(g) > 0)
		ev_run(w->w_loop, EVRUN_ONCE);

	/* every tunnel gets its line, then every line waiting for helpers */
	conn_shutdown_all(w);
	accesslog_shutdown(w);
	conn_reap(w);
	helper_shutdown(w);
	worker_flush(w);
	stats_log(w);
	ev_timer_stop(w->w_loop, &shutdown_timer);
	ev_signal_stop(w->w_loop, &sig_term);
	ev_signal_stop(w->w_loop, &sig_int);
	ev_signal_stop(w->w_loop, &sig_hup);
	ev_signal_stop(w->w_loop, &sig_usr1);
	wgroup_free(g);
	sink_flush_all(SINK_FLUSH_TIMEOUT);
	ares_library_cleanup();
	log_info("exiting");
	return 0;
}
