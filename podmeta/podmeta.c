/* podmeta.c: main, flags, the stdin request loop, requests waiting for the first sync, stats */
#include "config.h"

#include <sys/types.h>
#include <sys/queue.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "podmeta.h"

struct pending {
	struct proto_req	 pe_req;
	TAILQ_ENTRY(pending)	 pe_entry;
};

struct podmeta_conf	 conf = {
	.pc_max_value = PODMETA_MAX_VALUE,
	.pc_sync_wait = 5.0,
	.pc_delete_grace = 120.0,
};
struct podmeta_stats	 stats;
struct ev_loop		*loop;

static TAILQ_HEAD(, pending) podmeta_pending =
    TAILQ_HEAD_INITIALIZER(podmeta_pending);
static size_t		 podmeta_npending;
static int		 podmeta_synced_once;
static int		 podmeta_gave_up;	/* --sync-wait passed unsynced */
static int		 podmeta_eof;
static ev_io		 podmeta_stdin;
static ev_timer		 podmeta_syncwait;
static ev_timer		 podmeta_sweep;
static ev_signal	 podmeta_sigusr1, podmeta_sigterm, podmeta_sigint;
static struct pbuf	 podmeta_out;
static char		 podmeta_in[PODMETA_LINE_MAX + 1];
static size_t		 podmeta_inlen;
static int		 podmeta_discard;	/* inside an overlong line */
static struct proto_req	 podmeta_longreq;	/* its ID */

static __attribute__((noreturn)) void
usage(int status)
{
	FILE	*f = status ? stderr : stdout;

	fprintf(f,
"usage: podmeta [-hVv] [--source api|file:PATH] [--server URL]\n"
"\t[--token-file FILE] [--ca-file FILE] [--kubeconfig FILE] [--context NAME]\n"
"\t[--node NAME] [--namespace NS] [--labels REGEX] [--annotations REGEX]\n"
"\t[--max-value N] [--unknown ok|err] [--sync-wait SECONDS]\n"
"\t[--delete-grace SECONDS]\n"
"A Squid external ACL helper: reads client IPs on stdin, answers with\n"
"the pod that owns each one, from a list+watch of the Kubernetes API.\n"
"See podmeta(8).\n");
	exit(status);
}

static void
podmeta_flush(void)
{
	struct pollfd	 pfd;
	const char	*p = podmeta_out.pb_data;
	size_t		 len = podmeta_out.pb_len;
	ssize_t		 n;

	while (len > 0) {
		if ((n = write(STDOUT_FILENO, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				/* stdout came to us non-blocking: wait */
				pfd.fd = STDOUT_FILENO;
				pfd.events = POLLOUT;
				poll(&pfd, 1, -1);
				continue;
			}
			log_warn("stdout");
			podmeta_stats_log("exit");
			exit(1);
		}
		p += n;
		len -= (size_t)n;
	}
	podmeta_out.pb_len = 0;
}

static void
podmeta_reply(const struct proto_req *pr, enum proto_answer ans,
    const char *tail, size_t taillen)
{
	if (proto_reply(&podmeta_out, pr, ans, tail, taillen) == -1)
		fatal("reply");
	podmeta_flush();
}

static void
podmeta_answer(const struct proto_req *pr)
{
	const struct pod	*p;

	stats.ps_lookups++;
	if ((p = index_lookup(&pr->pr_addr)) != NULL) {
		stats.ps_hits++;
		podmeta_reply(pr, PROTO_HIT, p->p_tail, p->p_taillen);
	} else
		podmeta_reply(pr, conf.pc_unknown_err ? PROTO_UNKNOWN_ERR :
		    PROTO_UNKNOWN_OK, NULL, 0);
}

static void
podmeta_done_maybe(void)
{
	if (podmeta_eof && podmeta_npending == 0)
		ev_break(loop, EVBREAK_ALL);
}

static void
podmeta_request(char *line, size_t len)
{
	struct proto_req	 pr;
	struct pending		*pe;

	if (proto_parse(line, len, &pr) == -1) {
		stats.ps_bad_requests++;
		podmeta_reply(&pr, PROTO_BAD, NULL, 0);
		return;
	}
	if (podmeta_synced_once) {
		podmeta_answer(&pr);
		return;
	}
	if (podmeta_gave_up || podmeta_npending >= PODMETA_PENDING_MAX ||
	    (pe = malloc(sizeof(*pe))) == NULL) {
		stats.ps_lookups++;
		podmeta_reply(&pr, PROTO_BH, "no pod list yet", 0);
		return;
	}
	pe->pe_req = pr;
	TAILQ_INSERT_TAIL(&podmeta_pending, pe, pe_entry);
	podmeta_npending++;
}

/* Answer every waiting request: from the index once synced, else BH. */
static void
podmeta_drain(void)
{
	struct pending	*pe;

	while ((pe = TAILQ_FIRST(&podmeta_pending)) != NULL) {
		TAILQ_REMOVE(&podmeta_pending, pe, pe_entry);
		podmeta_npending--;
		if (podmeta_synced_once)
			podmeta_answer(&pe->pe_req);
		else {
			stats.ps_lookups++;
			podmeta_reply(&pe->pe_req, PROTO_BH,
			    "no pod list yet", 0);
		}
		free(pe);
	}
	podmeta_done_maybe();
}

/* A list completed: requests can be answered from now on. */
void
podmeta_synced(void)
{
	if (!podmeta_synced_once)
		log_info("synced: answering from the pod index");
	podmeta_synced_once = 1;
	ev_timer_stop(loop, &podmeta_syncwait);
	podmeta_drain();
}

static void
podmeta_syncwait_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	if (podmeta_synced_once)
		return;
	log_warnx("no pod list within %.1fs: answering BH until one arrives",
	    conf.pc_sync_wait);
	podmeta_gave_up = 1;
	podmeta_drain();
}

/* Consume complete lines from the input buffer; overlong ones get ERR. */
static void
podmeta_lines(int eof)
{
	char	*nl, *p = podmeta_in;
	size_t	 left = podmeta_inlen, n;

	while ((nl = memchr(p, '\n', left)) != NULL) {
		n = (size_t)(nl - p);
		if (podmeta_discard) {
			podmeta_discard = 0;
			stats.ps_bad_requests++;
			podmeta_reply(&podmeta_longreq, PROTO_BAD, NULL, 0);
		} else
			podmeta_request(p, n);
		p = nl + 1;
		left -= n + 1;
	}
	if (left == PODMETA_LINE_MAX && !podmeta_discard) {
		/* keep the channel ID from the start of the line */
		proto_parse(p, left, &podmeta_longreq);
		podmeta_longreq.pr_error = "request line too long";
		podmeta_discard = 1;
		left = 0;
	} else if (podmeta_discard)
		left = 0;
	if (eof && (left > 0 || podmeta_discard)) {
		if (podmeta_discard) {
			podmeta_discard = 0;
			stats.ps_bad_requests++;
			podmeta_reply(&podmeta_longreq, PROTO_BAD, NULL, 0);
		} else
			podmeta_request(p, left);
		left = 0;
	}
	memmove(podmeta_in, p, left);
	podmeta_inlen = left;
}

static void
podmeta_stdin_cb(struct ev_loop *l, ev_io *w, int revents)
{
	ssize_t	 n;

	n = read(STDIN_FILENO, podmeta_in + podmeta_inlen,
	    PODMETA_LINE_MAX - podmeta_inlen);
	if (n == -1) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		log_warn("stdin");
	}
	if (n <= 0) {
		podmeta_lines(1);
		podmeta_eof = 1;
		ev_io_stop(loop, w);
		podmeta_done_maybe();
		return;
	}
	podmeta_inlen += (size_t)n;
	podmeta_lines(0);
}

void
podmeta_stats_log(const char *why)
{
	size_t	live, tombs, addrs;

	index_counts(&live, &tombs, &addrs);
	log_info("stats (%s): pods=%zu tombstones=%zu addresses=%zu "
	    "events=%llu lists=%llu relists=%llu api_errors=%llu "
	    "lookups=%llu hits=%llu bad_requests=%llu bad_objects=%llu",
	    why, live, tombs, addrs, stats.ps_events, stats.ps_lists,
	    stats.ps_relists, stats.ps_api_errors, stats.ps_lookups,
	    stats.ps_hits, stats.ps_bad_requests, stats.ps_bad_objects);
}

static void
podmeta_signal_cb(struct ev_loop *l, ev_signal *w, int revents)
{
	if (w->signum == SIGUSR1) {
		podmeta_stats_log("SIGUSR1");
		return;
	}
	log_info("signal %d: exiting", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

static void
podmeta_sweep_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	index_expire(ev_now(loop));
}

static double
podmeta_seconds(const char *flag, const char *s)
{
	char	*end;
	double	 d;

	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || d < 0 || d > 1e7)
		fatalx("%s: bad number of seconds: %s", flag, s);
	return d;
}

enum {
	OPT_SOURCE = 256, OPT_SERVER, OPT_TOKEN_FILE, OPT_CA_FILE,
	OPT_KUBECONFIG, OPT_CONTEXT, OPT_NODE, OPT_NAMESPACE, OPT_LABELS,
	OPT_ANNOTATIONS, OPT_MAX_VALUE, OPT_UNKNOWN, OPT_SYNC_WAIT,
	OPT_DELETE_GRACE
};

static const struct option podmeta_opts[] = {
	{ "help",		no_argument,		NULL, 'h' },
	{ "version",		no_argument,		NULL, 'V' },
	{ "verbose",		no_argument,		NULL, 'v' },
	{ "source",		required_argument,	NULL, OPT_SOURCE },
	{ "server",		required_argument,	NULL, OPT_SERVER },
	{ "token-file",		required_argument,	NULL, OPT_TOKEN_FILE },
	{ "ca-file",		required_argument,	NULL, OPT_CA_FILE },
	{ "kubeconfig",		required_argument,	NULL, OPT_KUBECONFIG },
	{ "context",		required_argument,	NULL, OPT_CONTEXT },
	{ "node",		required_argument,	NULL, OPT_NODE },
	{ "namespace",		required_argument,	NULL, OPT_NAMESPACE },
	{ "labels",		required_argument,	NULL, OPT_LABELS },
	{ "annotations",	required_argument,	NULL, OPT_ANNOTATIONS },
	{ "max-value",		required_argument,	NULL, OPT_MAX_VALUE },
	{ "unknown",		required_argument,	NULL, OPT_UNKNOWN },
	{ "sync-wait",		required_argument,	NULL, OPT_SYNC_WAIT },
	{ "delete-grace",	required_argument,	NULL, OPT_DELETE_GRACE },
	{ NULL,			0,			NULL, 0 }
};

int
main(int argc, char *argv[])
{
	const char	*source = "api";
	char		*end;
	unsigned long	 ul;
	int		 ch, verbose = 0;

	diag_init(argv[0], 0);
	conf.pc_node = getenv("NODE_NAME");
	while ((ch = getopt_long(argc, argv, "hVv", podmeta_opts,
	    NULL)) != -1) {
		switch (ch) {
		case 'h':
			usage(0);
		case 'V':
			printf("podmeta %s\n", PACKAGE_VERSION);
			return 0;
		case 'v':
			verbose = 1;
			break;
		case OPT_SOURCE:
			source = optarg;
			break;
		case OPT_SERVER:
			conf.pc_server = optarg;
			break;
		case OPT_TOKEN_FILE:
			conf.pc_token_file = optarg;
			break;
		case OPT_CA_FILE:
			conf.pc_ca_file = optarg;
			break;
		case OPT_KUBECONFIG:
			conf.pc_kubeconfig = optarg;
			break;
		case OPT_CONTEXT:
			conf.pc_context = optarg;
			break;
		case OPT_NODE:
			conf.pc_node = optarg;
			break;
		case OPT_NAMESPACE:
			conf.pc_namespace = optarg;
			break;
		case OPT_LABELS:
			conf.pc_labels = optarg;
			break;
		case OPT_ANNOTATIONS:
			conf.pc_annotations = optarg;
			break;
		case OPT_MAX_VALUE:
			errno = 0;
			ul = strtoul(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    optarg[0] == '-' || ul > 1024 * 1024)
				fatalx("--max-value: bad number: %s", optarg);
			conf.pc_max_value = ul;
			break;
		case OPT_UNKNOWN:
			if (strcmp(optarg, "ok") == 0)
				conf.pc_unknown_err = 0;
			else if (strcmp(optarg, "err") == 0)
				conf.pc_unknown_err = 1;
			else
				fatalx("--unknown: ok or err, not %s", optarg);
			break;
		case OPT_SYNC_WAIT:
			conf.pc_sync_wait = podmeta_seconds("--sync-wait",
			    optarg);
			break;
		case OPT_DELETE_GRACE:
			conf.pc_delete_grace = podmeta_seconds("--delete-grace",
			    optarg);
			break;
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	diag_init(argv[0], verbose);
	if (conf.pc_node != NULL && conf.pc_node[0] == '\0')
		conf.pc_node = NULL;
	if (conf.pc_namespace != NULL && conf.pc_namespace[0] == '\0')
		conf.pc_namespace = NULL;
	if (strncmp(source, "file:", 5) == 0 && source[5] != '\0')
		conf.pc_source_file = source + 5;
	else if (strcmp(source, "api") != 0)
		fatalx("--source: api or file:PATH, not %s", source);

	signal(SIGPIPE, SIG_IGN);
	if ((loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		fatalx("cannot initialise libev");
	if (render_init(conf.pc_labels, conf.pc_annotations,
	    conf.pc_max_value) == -1)
		exit(2);
	index_init();

	ev_signal_init(&podmeta_sigusr1, podmeta_signal_cb, SIGUSR1);
	ev_signal_init(&podmeta_sigterm, podmeta_signal_cb, SIGTERM);
	ev_signal_init(&podmeta_sigint, podmeta_signal_cb, SIGINT);
	ev_signal_start(loop, &podmeta_sigusr1);
	ev_signal_start(loop, &podmeta_sigterm);
	ev_signal_start(loop, &podmeta_sigint);
	ev_timer_init(&podmeta_sweep, podmeta_sweep_cb, 1.0, 1.0);
	ev_timer_start(loop, &podmeta_sweep);
	ev_timer_init(&podmeta_syncwait, podmeta_syncwait_cb,
	    conf.pc_sync_wait, 0);
	ev_timer_start(loop, &podmeta_syncwait);
	ev_io_init(&podmeta_stdin, podmeta_stdin_cb, STDIN_FILENO, EV_READ);
	ev_io_start(loop, &podmeta_stdin);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
	if (conf.pc_source_file != NULL) {
		if (source_start(conf.pc_source_file) == -1)
			exit(1);
	} else {
		if (kube_init() == -1)
			exit(1);
		if (watch_start() == -1)
			exit(1);
	}

	ev_run(loop, 0);

	podmeta_stats_log("exit");
	if (conf.pc_source_file != NULL)
		source_stop();
	else {
		watch_stop();
		kube_free();
	}
	curl_global_cleanup();
	index_clear();
	render_free();
	pbuf_free(&podmeta_out);
	return 0;
}
