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

#define SCRATCH_LEN		(256 * 1024)
#define SINK_FLUSH_TIMEOUT	5.0

static ev_signal	 sig_term, sig_int, sig_hup, sig_usr1;
static ev_timer		 shutdown_timer;

static void
usage(void)
{
	fprintf(stderr, "usage: connectd [-dtvV] [-f file]\n");
	exit(2);
}

static void
stats_log(struct worker *w)
{
	struct stats		*st = &w->w_stats;
	struct relay_pool	*pl = &w->w_pipes;

	log_info("stats: accepted %llu, active %llu, tunnels %llu, "
	    "refused %llu, accept errors %llu, bytes up %llu, down %llu",
	    (unsigned long long)st->st_accepted,
	    (unsigned long long)st->st_active,
	    (unsigned long long)st->st_tunnels,
	    (unsigned long long)st->st_refused,
	    (unsigned long long)st->st_accept_errors,
	    (unsigned long long)st->st_bytes_up,
	    (unsigned long long)st->st_bytes_down);
	log_info("stats: splice: tunnels %llu, bytes %llu, pipes in use %u, "
	    "pooled %u, pool exhausted %llu",
	    (unsigned long long)pl->rpl_tunnels,
	    (unsigned long long)pl->rpl_bytes, pl->rpl_used, pl->rpl_nfree,
	    (unsigned long long)pl->rpl_exhausted);
	helper_stats_log(w);
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

	w->w_metrics.m_reloads++;
	w->w_metrics.m_reload_failed = 1;
	if (conf_load(old->c_path, &conf, err, sizeof(err)) == -1) {
		w->w_metrics.m_reload_failures++;
		log_warnx("reload refused, keeping the running configuration: "
		    "%s", err);
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
	if (listener_sync(w, conf, err, sizeof(err)) == -1) {
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
	resolve_reconfigure(w, conf);
	helper_sync(w, conf);
	w->w_conf = conf;
	conf_unref(old);
	listener_limit(w);
	if (conf->c_metrics != NULL && !w->w_helpers_ready)
		helper_probe_start(w);
	log_info("configuration reloaded from %s", conf->c_path);
}

/*
 * The end of every loop turn, before the loop sleeps: the safe point for
 * work that must not run inside another module's callback.  Helper
 * answers wake connections and complete log lines; connections closed
 * during the turn are freed; the turn's log lines go to the writers.
 */
static void
worker_turn_end_cb(EV_P_ ev_prepare *p, int revents)
{
	struct worker	*w = p->data;

	helper_ready_run(w);
	conn_reap(w);
	sink_kick_all();
}

static void
shutdown_timer_cb(EV_P_ ev_timer *t, int revents)
{
	conn_shutdown_all(t->data);
	ev_break(EV_A, EVBREAK_ALL);
}

static void
signal_cb(EV_P_ ev_signal *s, int revents)
{
	struct worker	*w = s->data;
	double		 grace;

	switch (s->signum) {
	case SIGTERM:
	case SIGINT:
		if (w->w_stopping) {
			shutdown_timer_cb(EV_A, &shutdown_timer, 0);
			return;
		}
		log_info("signal %d: shutting down, %llu connections open",
		    s->signum, (unsigned long long)w->w_stats.st_active);
		/*
		 * As Squid does (tried with 5.7): the ports close, so that
		 * new clients are refused, while what is open carries on
		 * for shutdown_lifetime; /readyz says 503 meanwhile.  The
		 * process exits as soon as the last one closes.
		 */
		w->w_stopping = 1;
		listener_close_all(w);
		conn_drain(w);
		grace = w->w_conf->c_shutdown_lifetime;
		/*
		 * systemd's stop timeout is extended to cover the drain and
		 * the log flush, whatever shutdown_lifetime says.
		 */
		sdnotify("STOPPING=1\nSTATUS=shutting down, %llu connections "
		    "open\nEXTEND_TIMEOUT_USEC=%llu",
		    (unsigned long long)w->w_stats.st_active,
		    (unsigned long long)((grace > 0. ? grace : 0.) +
		    SINK_FLUSH_TIMEOUT + 5.) * 1000000ULL);
		if (TAILQ_EMPTY(&w->w_conns) || grace <= 0.) {
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

static struct worker *
worker_create(struct conf *conf)
{
	struct worker	*w;
	char		 err[ERRBUF_LEN];

	if ((w = calloc(1, sizeof(*w))) == NULL)
		fatal("calloc");
	if ((w->w_loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		fatalx("cannot initialise the event loop");
	metrics_init(w);
	w->w_conf = conf;
	/* the prefix of every line's uid: unique to this worker's life */
	if (logrec_instance(w->w_instance, sizeof(w->w_instance)) == -1)
		log_warnx("getrandom failed: line uids come from the time");
	w->w_scratch_len = SCRATCH_LEN;
	if ((w->w_scratch = malloc(w->w_scratch_len)) == NULL)
		fatal("malloc");
	TAILQ_INIT(&w->w_conns);
	TAILQ_INIT(&w->w_closed);
	TAILQ_INIT(&w->w_listeners);
	TAILQ_INIT(&w->w_parked);
	ev_prepare_init(&w->w_turn_end, worker_turn_end_cb);
	w->w_turn_end.data = w;
	ev_prepare_start(w->w_loop, &w->w_turn_end);
	w->w_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	w->w_auto_max = limit_auto_max();
	if (resolve_init(w, conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	ifaddr_init(w);
	return w;
}

static void
worker_free(struct worker *w)
{
	ev_prepare_stop(w->w_loop, &w->w_turn_end);
	listener_close_all(w);
	forward_pool_free(w);
	relay_pool_free(w);
	admin_free(w);
	metrics_free(w);
	limit_free(w);
	ifaddr_free(w);
	resolve_free(w);
	if (w->w_spare_fd != -1)
		close(w->w_spare_fd);
	conf_unref(w->w_conf);
	free(w->w_scratch);
	free(w);
}

int
main(int argc, char *argv[])
{
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

	w = worker_create(conf);
	/* before the writer threads: the opener is a plain fork */
	if (opener_start(conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (accesslog_open(conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (listener_sync(w, conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	w->w_listening = 1;
	if (admin_sync(w, conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (limit_drop_privileges(conf, err, sizeof(err)) == -1)
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

	/* every tunnel gets its line, then every line waiting for helpers */
	conn_shutdown_all(w);
	accesslog_shutdown(w);
	conn_reap(w);
	helper_shutdown(w);
	stats_log(w);
	ev_timer_stop(w->w_loop, &shutdown_timer);
	ev_signal_stop(w->w_loop, &sig_term);
	ev_signal_stop(w->w_loop, &sig_int);
	ev_signal_stop(w->w_loop, &sig_hup);
	ev_signal_stop(w->w_loop, &sig_usr1);
	worker_free(w);
	sink_flush_all(SINK_FLUSH_TIMEOUT);
	ares_library_cleanup();
	log_info("exiting");
	return 0;
}
