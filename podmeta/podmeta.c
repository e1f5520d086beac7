/* podmeta.c: main, flags, the stdin request loop, requests waiting for the first sync, stats */
#include <sys/types.h>
#include <sys/queue.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
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

static __attribute__((noreturn)) void
usage(int status)
{
	FILE	*f = status ? stderr : stdout;

	fprintf(f,
"usage: podmeta [-hVv] [--source api|file:PATH] [--server URL]\n"
"\t[--token-file FILE] [--ca-file FILE] [--kubeconfig FILE] [--context NAME]\n"
"\t[--node NAME] [--namespace NS] [--labels REGEX] [--annotations REGEX]\n"
"\t[--max-value N] [--unknown ok|err] [--sync-wait SECONDS]\n"
"\t[--delete-grace SECONDS] [--channel-id auto|yes|no] [--address-token N]\n"
"\t[--policy]\n"
"A Squid external ACL helper: reads client IPs on stdin, answers with\n"
"the pod that owns each one, from a list+watch of the Kubernetes API.\n"
"See podmeta(8).\n");
	exit(status);
}

/* A bad option value: a usage error (exit 2, as podmeta(8) says). */
static __attribute__((noreturn, format(printf, 1, 2))) void
badarg(const char *fmt, ...)
{
	va_list	 ap;

	fputs("podmeta: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void
podmeta_flush(struct podmeta *pm)
{
	struct pollfd	 pfd;
	const char	*p = pm->pm_out.b_data;
	size_t		 len = pm->pm_out.b_len;
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
			podmeta_stats_log(pm, "exit");
			exit(1);
		}
		p += n;
		len -= (size_t)n;
	}
	buf_reset(&pm->pm_out);
}

static void
podmeta_reply(struct podmeta *pm, const struct proto_req *pr,
    enum proto_answer ans, const char *tail, size_t taillen)
{
	if (proto_reply(&pm->pm_out, pr, ans, tail, taillen) == -1)
		fatal("reply");
	podmeta_flush(pm);
}

/* --policy: the pod's verdict for pr's destination, and its log=. */
static void
podmeta_answer_policy(struct podmeta *pm, const struct proto_req *pr)
{
	const struct pod	*p;
	struct policy_result	 r;
	char			*pol;

	pm->pm_stats.ps_lookups++;
	if ((p = index_lookup(pm->pm_index, &pr->pr_addr)) != NULL)
		pm->pm_stats.ps_hits++;
	policy_decide(pm->pm_ns, p, pr->pr_dst, pr->pr_port, pr->pr_sni, &r);
	if (p == NULL && pm->pm_conf.pc_unknown_err) {
		r.pr_mode = POLICY_MODE_ENFORCE;
		r.pr_allow = 0;
	}
	if ((pol = policy_result_json(&r)) == NULL)
		fatal("policy");
	if (!r.pr_allow)
		pm->pm_stats.ps_policy_deny++;
	else if (r.pr_reason != NULL && p != NULL && !p->p_hostnet)
		pm->pm_stats.ps_policy_would_deny++;
	else
		pm->pm_stats.ps_policy_allow++;
	if (proto_reply_policy(&pm->pm_out, pr, r.pr_allow,
	    p != NULL ? p->p_tail : NULL, p != NULL ? p->p_taillen : 0,
	    pol) == -1)
		fatal("reply");
	free(pol);
	podmeta_flush(pm);
}

static void
podmeta_answer(struct podmeta *pm, const struct proto_req *pr)
{
	const struct pod	*p;

	if (pm->pm_conf.pc_policy) {
		podmeta_answer_policy(pm, pr);
		return;
	}
	pm->pm_stats.ps_lookups++;
	if ((p = index_lookup(pm->pm_index, &pr->pr_addr)) != NULL) {
		pm->pm_stats.ps_hits++;
		podmeta_reply(pm, pr, PROTO_HIT, p->p_tail, p->p_taillen);
	} else
		podmeta_reply(pm, pr, pm->pm_conf.pc_unknown_err ?
		    PROTO_UNKNOWN_ERR : PROTO_UNKNOWN_OK, NULL, 0);
}

static void
podmeta_done_maybe(struct podmeta *pm)
{
	if (pm->pm_eof && pm->pm_npending == 0)
		ev_break(pm->pm_loop, EVBREAK_ALL);
}

static void
podmeta_request(struct podmeta *pm, char *line, size_t len)
{
	struct proto_req	 pr;
	struct pending		*pe;

	if ((pm->pm_conf.pc_policy ? proto_parse_policy : proto_parse_as)(line,
	    len, pm->pm_conf.pc_idmode, pm->pm_conf.pc_addrtok, &pr) == -1) {
		pm->pm_stats.ps_bad_requests++;
		podmeta_reply(pm, &pr, PROTO_BAD, NULL, 0);
		return;
	}
	if (pm->pm_synced) {
		podmeta_answer(pm, &pr);
		return;
	}
	if (pm->pm_gave_up || pm->pm_npending >= PODMETA_PENDING_MAX ||
	    (pe = malloc(sizeof(*pe))) == NULL) {
		pm->pm_stats.ps_lookups++;
		podmeta_reply(pm, &pr, PROTO_BH, "no pod list yet", 0);
		return;
	}
	pe->pe_req = pr;
	TAILQ_INSERT_TAIL(&pm->pm_pending, pe, pe_entry);
	pm->pm_npending++;
}

/* Answer every waiting request: from the index once synced, else BH. */
static void
podmeta_drain(struct podmeta *pm)
{
	struct pending	*pe;

	while ((pe = TAILQ_FIRST(&pm->pm_pending)) != NULL) {
		TAILQ_REMOVE(&pm->pm_pending, pe, pe_entry);
		pm->pm_npending--;
		if (pm->pm_synced)
			podmeta_answer(pm, &pe->pe_req);
		else {
			pm->pm_stats.ps_lookups++;
			podmeta_reply(pm, &pe->pe_req, PROTO_BH,
			    "no pod list yet", 0);
		}
		free(pe);
	}
	podmeta_done_maybe(pm);
}

void
podmeta_pod_policy_note(struct podmeta *pm, const struct pod *p)
{
	const struct pod	*old;

	if (!pm->pm_conf.pc_policy || p->p_policy.ps_error == NULL)
		return;
	/* a status update repeats the annotations: said once per change */
	if ((old = index_pod(pm->pm_index, p->p_uid)) != NULL &&
	    old->p_polsig == p->p_polsig)
		return;
	log_warnx("pod %s/%s: %s; using %s", p->p_namespace, p->p_name,
	    p->p_policy.ps_error, "the namespace's");
}

int
podmeta_add_pod(struct podmeta *pm, json_t *obj, const char *what)
{
	struct pod	*p;

	if ((p = render_pod(pm->pm_render, obj)) == NULL) {
		pm->pm_stats.ps_bad_objects++;
		return -1;
	}
	podmeta_pod_policy_note(pm, p);
	if (index_upsert(pm->pm_index, p) == -1)
		log_warnx("%s: out of memory", what);
	return 0;
}

void
podmeta_synced(struct podmeta *pm, int namespaces)
{
	if (namespaces)
		pm->pm_ns_synced = 1;
	else
		pm->pm_pods_synced = 1;
	/* --policy: a pod's verdict needs its namespace's defaults */
	if (!pm->pm_pods_synced ||
	    (pm->pm_nswatch != NULL && !pm->pm_ns_synced))
		return;
	if (!pm->pm_synced)
		log_info("synced: answering from the pod index");
	pm->pm_synced = 1;
	ev_timer_stop(pm->pm_loop, &pm->pm_syncwait);
	podmeta_drain(pm);
}

static void
podmeta_syncwait_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct podmeta	*pm = w->data;

	if (pm->pm_synced)
		return;
	log_warnx("no pod list within %.1fs: answering BH until one arrives",
	    pm->pm_conf.pc_sync_wait);
	pm->pm_gave_up = 1;
	podmeta_drain(pm);
}

/* Consume complete lines from the input buffer; overlong ones get ERR. */
static void
podmeta_lines(struct podmeta *pm, int eof)
{
	char	*nl, *p = pm->pm_in;
	size_t	 left = pm->pm_inlen, n;

	while ((nl = memchr(p, '\n', left)) != NULL) {
		n = (size_t)(nl - p);
		if (pm->pm_discard) {
			pm->pm_discard = 0;
			pm->pm_stats.ps_bad_requests++;
			podmeta_reply(pm, &pm->pm_longreq, PROTO_BAD, NULL, 0);
		} else
			podmeta_request(pm, p, n);
		p = nl + 1;
		left -= n + 1;
	}
	if (left == PODMETA_LINE_MAX && !pm->pm_discard) {
		/* keep the channel ID from the start of the line */
		proto_parse_as(p, left, pm->pm_conf.pc_idmode,
		    pm->pm_conf.pc_addrtok, &pm->pm_longreq);
		pm->pm_longreq.pr_error = "request line too long";
		pm->pm_discard = 1;
		left = 0;
	} else if (pm->pm_discard)
		left = 0;
	if (eof && (left > 0 || pm->pm_discard)) {
		if (pm->pm_discard) {
			pm->pm_discard = 0;
			pm->pm_stats.ps_bad_requests++;
			podmeta_reply(pm, &pm->pm_longreq, PROTO_BAD, NULL, 0);
		} else
			podmeta_request(pm, p, left);
		left = 0;
	}
	memmove(pm->pm_in, p, left);
	pm->pm_inlen = left;
}

static void
podmeta_stdin_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct podmeta	*pm = w->data;
	ssize_t		 n;

	n = read(STDIN_FILENO, pm->pm_in + pm->pm_inlen,
	    PODMETA_LINE_MAX - pm->pm_inlen);
	if (n == -1) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		log_warn("stdin");
	}
	if (n <= 0) {
		podmeta_lines(pm, 1);
		pm->pm_eof = 1;
		ev_io_stop(pm->pm_loop, w);
		podmeta_done_maybe(pm);
		return;
	}
	pm->pm_inlen += (size_t)n;
	podmeta_lines(pm, 0);
}

void
podmeta_stats_log(struct podmeta *pm, const char *why)
{
	const struct podmeta_stats *st = &pm->pm_stats;
	size_t		 live, tombs, addrs;

	index_counts(pm->pm_index, &live, &tombs, &addrs);
	log_info("stats (%s): pods=%zu tombstones=%zu addresses=%zu "
	    "events=%llu lists=%llu relists=%llu api_errors=%llu "
	    "lookups=%llu hits=%llu bad_requests=%llu bad_objects=%llu",
	    why, live, tombs, addrs, st->ps_events, st->ps_lists,
	    st->ps_relists, st->ps_api_errors, st->ps_lookups,
	    st->ps_hits, st->ps_bad_requests, st->ps_bad_objects);
	if (pm->pm_conf.pc_policy)
		log_info("policy stats (%s): namespaces=%zu "
		    "namespace_events=%llu allow=%llu deny=%llu "
		    "would_deny=%llu", why, ns_count(pm->pm_ns),
		    st->ps_ns_events, st->ps_policy_allow,
		    st->ps_policy_deny, st->ps_policy_would_deny);
}

static void
podmeta_signal_cb(struct ev_loop *l, ev_signal *w, int revents)
{
	struct podmeta	*pm = w->data;

	if (w->signum == SIGUSR1) {
		podmeta_stats_log(pm, "SIGUSR1");
		return;
	}
	log_info("signal %d: exiting", w->signum);
	ev_break(pm->pm_loop, EVBREAK_ALL);
}

static void
podmeta_sweep_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct podmeta	*pm = w->data;

	index_expire(pm->pm_index, ev_now(pm->pm_loop));
}

static double
podmeta_seconds(const char *flag, const char *s)
{
	char	*end;
	double	 d;

	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || d < 0 || d > 1e7)
		badarg("%s: bad number of seconds: %s", flag, s);
	return d;
}

enum {
	OPT_SOURCE = 256, OPT_SERVER, OPT_TOKEN_FILE, OPT_CA_FILE,
	OPT_KUBECONFIG, OPT_CONTEXT, OPT_NODE, OPT_NAMESPACE, OPT_LABELS,
	OPT_ANNOTATIONS, OPT_MAX_VALUE, OPT_UNKNOWN, OPT_SYNC_WAIT,
	OPT_DELETE_GRACE, OPT_CHANNEL_ID, OPT_ADDRESS_TOKEN, OPT_POLICY
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
	{ "channel-id",		required_argument,	NULL, OPT_CHANNEL_ID },
	{ "address-token",	required_argument,	NULL, OPT_ADDRESS_TOKEN },
	{ "policy",		no_argument,		NULL, OPT_POLICY },
	{ NULL,			0,			NULL, 0 }
};

int
main(int argc, char *argv[])
{
	struct podmeta		 pm;
	struct podmeta_conf	*conf = &pm.pm_conf;
	struct pending		*pe;
	const char		*source = "api";
	char			*end;
	unsigned long		 ul;
	int			 ch, verbose = 0;

	memset(&pm, 0, sizeof(pm));
	TAILQ_INIT(&pm.pm_pending);
	buf_init(&pm.pm_out, 0);
	conf->pc_max_value = PODMETA_MAX_VALUE;
	conf->pc_sync_wait = 5.0;
	conf->pc_delete_grace = 120.0;
	conf->pc_idmode = HELPER_ID_AUTO;
	conf->pc_addrtok = 1;

	diag_init(argv[0], 0);
	conf->pc_node = getenv("NODE_NAME");
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
			conf->pc_server = optarg;
			break;
		case OPT_TOKEN_FILE:
			conf->pc_token_file = optarg;
			break;
		case OPT_CA_FILE:
			conf->pc_ca_file = optarg;
			break;
		case OPT_KUBECONFIG:
			conf->pc_kubeconfig = optarg;
			break;
		case OPT_CONTEXT:
			conf->pc_context = optarg;
			break;
		case OPT_NODE:
			conf->pc_node = optarg;
			break;
		case OPT_NAMESPACE:
			conf->pc_namespace = optarg;
			break;
		case OPT_LABELS:
			conf->pc_labels = optarg;
			break;
		case OPT_ANNOTATIONS:
			conf->pc_annotations = optarg;
			break;
		case OPT_MAX_VALUE:
			errno = 0;
			ul = strtoul(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    optarg[0] == '-' || ul > 1024 * 1024)
				badarg("--max-value: bad number: %s", optarg);
			conf->pc_max_value = ul;
			break;
		case OPT_UNKNOWN:
			if (strcmp(optarg, "ok") == 0)
				conf->pc_unknown_err = 0;
			else if (strcmp(optarg, "err") == 0)
				conf->pc_unknown_err = 1;
			else
				badarg("--unknown: ok or err, not %s", optarg);
			break;
		case OPT_SYNC_WAIT:
			conf->pc_sync_wait = podmeta_seconds("--sync-wait",
			    optarg);
			break;
		case OPT_DELETE_GRACE:
			conf->pc_delete_grace = podmeta_seconds(
			    "--delete-grace", optarg);
			break;
		case OPT_CHANNEL_ID:
			/* Squid never tells a helper about concurrency */
			if (strcmp(optarg, "auto") == 0)
				conf->pc_idmode = HELPER_ID_AUTO;
			else if (strcmp(optarg, "yes") == 0)
				conf->pc_idmode = HELPER_ID_REQUIRED;
			else if (strcmp(optarg, "no") == 0)
				conf->pc_idmode = HELPER_ID_NONE;
			else
				badarg("--channel-id: auto, yes or no, not %s",
				    optarg);
			break;
		case OPT_ADDRESS_TOKEN:
			errno = 0;
			ul = strtoul(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    optarg[0] == '-' || ul < 1 ||
			    ul > HELPER_TOKENS_MAX)
				badarg("--address-token: a number from 1 to "
				    "%d, not %s", HELPER_TOKENS_MAX, optarg);
			conf->pc_addrtok = ul;
			break;
		case OPT_POLICY:
			conf->pc_policy = 1;
			break;
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	diag_init(argv[0], verbose);
	if (conf->pc_node != NULL && conf->pc_node[0] == '\0')
		conf->pc_node = NULL;
	if (conf->pc_namespace != NULL && conf->pc_namespace[0] == '\0')
		conf->pc_namespace = NULL;
	if (strncmp(source, "file:", 5) == 0 && source[5] != '\0')
		conf->pc_source_file = source + 5;
	else if (strcmp(source, "api") != 0)
		badarg("--source: api or file:PATH, not %s", source);

	signal(SIGPIPE, SIG_IGN);
	if ((pm.pm_loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		fatalx("cannot initialise libev");
	if ((pm.pm_render = render_new(conf->pc_labels, conf->pc_annotations,
	    conf->pc_max_value)) == NULL)
		exit(2);
	if ((pm.pm_index = index_new(conf->pc_delete_grace)) == NULL)
		fatal("index");

	ev_signal_init(&pm.pm_sigusr1, podmeta_signal_cb, SIGUSR1);
	ev_signal_init(&pm.pm_sigterm, podmeta_signal_cb, SIGTERM);
	ev_signal_init(&pm.pm_sigint, podmeta_signal_cb, SIGINT);
	pm.pm_sigusr1.data = pm.pm_sigterm.data = pm.pm_sigint.data = &pm;
	ev_signal_start(pm.pm_loop, &pm.pm_sigusr1);
	ev_signal_start(pm.pm_loop, &pm.pm_sigterm);
	ev_signal_start(pm.pm_loop, &pm.pm_sigint);
	ev_timer_init(&pm.pm_sweep, podmeta_sweep_cb, 1.0, 1.0);
	pm.pm_sweep.data = &pm;
	ev_timer_start(pm.pm_loop, &pm.pm_sweep);
	ev_timer_init(&pm.pm_syncwait, podmeta_syncwait_cb,
	    conf->pc_sync_wait, 0);
	pm.pm_syncwait.data = &pm;
	ev_timer_start(pm.pm_loop, &pm.pm_syncwait);
	ev_io_init(&pm.pm_stdin, podmeta_stdin_cb, STDIN_FILENO, EV_READ);
	pm.pm_stdin.data = &pm;
	ev_io_start(pm.pm_loop, &pm.pm_stdin);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
	if (conf->pc_source_file != NULL) {
		if ((pm.pm_source = source_start(&pm,
		    conf->pc_source_file)) == NULL)
			exit(1);
	} else {
		if ((pm.pm_kube = kube_new(conf)) == NULL)
			exit(1);
		if (conf->pc_policy && ((pm.pm_ns = ns_index_new()) == NULL ||
		    (pm.pm_nswatch = watch_start(&pm, 1)) == NULL))
			exit(1);
		if ((pm.pm_watch = watch_start(&pm, 0)) == NULL)
			exit(1);
	}

	ev_run(pm.pm_loop, 0);

	podmeta_stats_log(&pm, "exit");
	while ((pe = TAILQ_FIRST(&pm.pm_pending)) != NULL) {
		/* a signal came before the first list: nobody is listening */
		TAILQ_REMOVE(&pm.pm_pending, pe, pe_entry);
		free(pe);
	}
	source_stop(pm.pm_source);
	watch_stop(pm.pm_watch);
	watch_stop(pm.pm_nswatch);
	kube_free(pm.pm_kube);
	curl_global_cleanup();
	index_free(pm.pm_index);
	ns_index_free(pm.pm_ns);
	render_free(pm.pm_render);
	buf_free(&pm.pm_out);
	return 0;
}
