/* source.c: --source file:PATH, a PodList read by a worker thread, an item at a time, at start and on change */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "podmeta.h"

/*
 * Pods put in the index per loop turn: lookups wait for one slice at
 * most (about a millisecond), never for a whole list.
 */
#define SOURCE_SLICE	1024
#define SOURCE_READ	(1024 * 1024)	/* bytes per read(2): the worker looks
					   at l_stop in between */

TAILQ_HEAD(source_pods, pod);

/*
 * One load of the file.  The loop fills it and starts the worker; from
 * then until the worker's ev_async_send() and the loop's pthread_join(),
 * everything in it but l_stop belongs to the worker.
 */
struct load {
	int			 l_fd;		/* the worker closes it */
	size_t			 l_size;	/* the file's when opened */
	struct buf		 l_in;		/* the file, up to l_size + 1 */
	int			 l_stop;	/* atomic: give up, says the loop */
	int			 l_errno;	/* reading failed */
	char			 l_err[256];	/* ":line: why", or "" */
	struct source_pods	 l_pods;	/* rendered, in file order */
	size_t			 l_npods;
	unsigned long long	 l_bad;		/* not usable as pods */
};

enum source_state {
	SOURCE_IDLE,
	SOURCE_LOADING,		/* the worker reads and renders */
	SOURCE_APPLYING		/* the loop puts the pods in the index */
};

/* s_render is the worker's: its pcre2 match data is never the loop's. */
struct source {
	struct podmeta		*s_pm;
	const char		*s_path;	/* borrowed from the caller */
	struct render		*s_render;
	ev_timer		 s_timer;	/* looks at the file every second */
	ev_async		 s_done;	/* the worker has finished */
	ev_timer		 s_apply;	/* the next slice, next turn */
	struct stat		 s_seen;	/* the version last tried */
	int			 s_tried;
	int			 s_errno;	/* of stat(), to log it once */
	enum source_state	 s_state;
	pthread_t		 s_thread;
	struct load		 s_load;
};

static int
source_same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	    a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static const char *
source_kind(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "of an unknown type";
}

static void
source_free_pods(struct load *l)
{
	struct pod	*p;

	while ((p = TAILQ_FIRST(&l->l_pods)) != NULL) {
		TAILQ_REMOVE(&l->l_pods, p, p_entry);
		pod_free(p);
	}
	l->l_npods = 0;
}

/* ---------------------------------------------------------- the worker */

static int
source_stopping(struct load *l)
{
	return __atomic_load_n(&l->l_stop, __ATOMIC_RELAXED);
}

/*
 * Read the whole file into l_in: exactly the size fstat() gave, else it
 * changed meanwhile (the next tick sees it).  0, or -1 with l_err or
 * l_errno set (or when asked to stop).
 */
static int
source_read(struct load *l)
{
	char	*p;
	size_t	 avail;
	ssize_t	 n;

	/* one more byte than expected, to see a file that grew */
	buf_init(&l->l_in, l->l_size + 1);
	for (;;) {
		if (source_stopping(l))
			return -1;
		if ((p = buf_space(&l->l_in, l->l_size + 1 - l->l_in.b_len,
		    &avail)) == NULL) {
			if (errno != E2BIG) {
				l->l_errno = errno;
				return -1;
			}
			break;
		}
		if (avail > SOURCE_READ)
			avail = SOURCE_READ;
		if ((n = read(l->l_fd, p, avail)) == -1) {
			if (errno == EINTR)
				continue;
			l->l_errno = errno;
			return -1;
		}
		if (n == 0)
			break;
		buf_commit(&l->l_in, (size_t)n);
	}
	if (l->l_in.b_len != l->l_size) {
		snprintf(l->l_err, sizeof(l->l_err),
		    ": changed while being read");
		return -1;
	}
	return 0;
}

/*
 * A scanner that only finds where things end in l_in; jansson parses
 * (and so checks) every value it delimits, so a file that is not JSON
 * is still refused.  NULL: it does not end before end.
 */
static const char *
scan_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' ||
	    *p == '\r'))
		p++;
	return p;
}

/* p is at a '"'. */
static const char *
scan_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\') {
			if (end - p < 2)
				return NULL;
			p++;
		} else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

static const char *
scan_value(const char *p, const char *end)
{
	const char	*q;
	size_t		 depth = 0;

	if (p == end)
		return NULL;
	if (*p != '{' && *p != '[' && *p != '"') {
		/* a number, true, false or null */
		for (q = p; q < end; q++)
			if (*q == ',' || *q == ':' || *q == ']' || *q == '}' ||
			    *q == ' ' || *q == '\t' || *q == '\n' ||
			    *q == '\r')
				break;
		return q;
	}
	do {
		if (*p == '"') {
			if ((p = scan_string(p, end)) == NULL)
				return NULL;
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
			depth--;
		p++;
	} while (depth > 0 && p < end);
	return depth == 0 ? p : NULL;
}

/* l_err = ":LINE: what", the line that of p in l_in plus line - 1. */
static int
source_error(struct load *l, const char *p, int line, const char *what)
{
	const char	*q = l->l_in.b_data;

	if (line < 1)
		line = 1;
	while ((q = memchr(q, '\n', (size_t)(p - q))) != NULL) {
		line++;
		q++;
	}
	snprintf(l->l_err, sizeof(l->l_err), ":%d: %s", line, what);
	return -1;
}

/* The JSON value p[0..len) of l_in, or NULL after source_error(). */
static json_t *
source_json(struct load *l, const char *p, const char *end)
{
	json_error_t	 err;
	json_t		*v;

	if ((v = json_loadb(p, (size_t)(end - p), JSON_DECODE_ANY,
	    &err)) == NULL)
		source_error(l, p, err.line, err.text);
	return v;
}

/*
 * Render each item of the PodList in l_in into l_pods.  Only one item at
 * a time is a JSON tree: a tree of the whole list is ten times the file,
 * and freeing it would hold up an exit.  0, or -1 with l_err set (or when
 * asked to stop).
 */
static int
source_parse(struct source *s)
{
	struct load	*l = &s->s_load;
	const char	*p = l->l_in.b_data, *end = p + l->l_in.b_len, *q;
	json_t		*v;
	struct pod	*pod;
	int		 items = 0, isitems;

	p = scan_ws(p, end);
	if (p == end || *p != '{')
		return source_error(l, p, 1, "a JSON object expected");
	p = scan_ws(p + 1, end);
	if (p < end && *p == '}')
		p++;
	else for (;;) {
		if (p == end || *p != '"' || (q = scan_string(p, end)) == NULL)
			return source_error(l, p, 1,
			    "a string (a key) expected");
		if ((v = source_json(l, p, q)) == NULL)
			return -1;
		/* key on items, not kind: kubelet lists say "Pod" */
		isitems = strcmp(json_string_value(v), "items") == 0;
		json_decref(v);
		p = scan_ws(q, end);
		if (p == end || *p != ':')
			return source_error(l, p, 1, "':' expected");
		p = scan_ws(p + 1, end);
		if (!isitems) {
			if ((q = scan_value(p, end)) == NULL || q == p)
				return source_error(l, p, 1, q == NULL ?
				    "premature end of input" :
				    "a value expected");
			if ((v = source_json(l, p, q)) == NULL)
				return -1;
			json_decref(v);
			p = q;
		} else if (p == end || *p != '[')
			return source_error(l, p, 1, "no \"items\" array");
		else {
			/* a later "items" wins, as in jansson's objects */
			source_free_pods(l);
			l->l_bad = 0;
			items = 1;
			p = scan_ws(p + 1, end);
			if (p < end && *p == ']')
				p++;
			else for (;;) {
				if (source_stopping(l))
					return -1;
				if ((q = scan_value(p, end)) == NULL || q == p)
					return source_error(l, p, 1, q == NULL ?
					    "premature end of input" :
					    "a value expected");
				if ((v = source_json(l, p, q)) == NULL)
					return -1;
				if ((pod = render_pod(s->s_render, v)) == NULL)
					l->l_bad++;
				else {
					TAILQ_INSERT_TAIL(&l->l_pods, pod,
					    p_entry);
					l->l_npods++;
				}
				json_decref(v);
				p = scan_ws(q, end);
				if (p < end && *p == ']') {
					p++;
					break;
				}
				if (p == end || *p != ',')
					return source_error(l, p, 1,
					    "',' or ']' expected");
				p = scan_ws(p + 1, end);
			}
		}
		p = scan_ws(p, end);
		if (p < end && *p == '}') {
			p++;
			break;
		}
		if (p == end || *p != ',')
			return source_error(l, p, 1, "',' or '}' expected");
		p = scan_ws(p + 1, end);
	}
	if (scan_ws(p, end) != end)
		return source_error(l, p, 1, "end of file expected");
	if (!items) {
		snprintf(l->l_err, sizeof(l->l_err), ": no \"items\" array");
		return -1;
	}
	return 0;
}

/*
 * Read the file and render its pods into l_pods.  Touches nothing but
 * its load and its own struct render, and logs nothing: the loop reports.
 */
static void *
source_main(void *arg)
{
	struct source	*s = arg;
	struct load	*l = &s->s_load;

	if (source_read(l) == -1 || source_parse(s) == -1)
		source_free_pods(l);
	close(l->l_fd);
	l->l_fd = -1;
	buf_free(&l->l_in);
#ifdef __GLIBC__
	malloc_trim(0);
#endif
	ev_async_send(s->s_pm->pm_loop, &s->s_done);
	return NULL;
}

/* ------------------------------------------------------------ the loop */

/* Put the next slice of the rendered pods in the index; at the end, sync. */
static void
source_apply(struct source *s)
{
	struct podmeta	*pm = s->s_pm;
	struct load	*l = &s->s_load;
	struct pod	*p;
	size_t		 n = 0;

	while (n < SOURCE_SLICE && (p = TAILQ_FIRST(&l->l_pods)) != NULL) {
		TAILQ_REMOVE(&l->l_pods, p, p_entry);
		podmeta_pod_policy_note(pm, p);
		if (index_upsert(pm->pm_index, p) == -1)
			log_warnx("%s: out of memory", s->s_path);
		n++;
	}
	if (!TAILQ_EMPTY(&l->l_pods)) {
		ev_timer_set(&s->s_apply, 0., 0.);
		ev_timer_start(pm->pm_loop, &s->s_apply);
		return;
	}
	index_list_end(pm->pm_index, ev_now(pm->pm_loop));
	s->s_state = SOURCE_IDLE;
	pm->pm_stats.ps_events++;
	if (pm->pm_stats.ps_lists++ > 0)
		pm->pm_stats.ps_relists++;
	log_info("%s: loaded %zu pods", s->s_path, l->l_npods);
	podmeta_synced(pm, 0);
}

static void
source_apply_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	source_apply(w->data);
}

static void
source_done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct source	*s = w->data;
	struct load	*l = &s->s_load;

	if (s->s_state != SOURCE_LOADING)
		return;
	pthread_join(s->s_thread, NULL);
	if (l->l_errno != 0 || l->l_err[0] != '\0') {
		if (l->l_errno != 0)
			log_warnx("%s: %s", s->s_path, strerror(l->l_errno));
		else
			log_warnx("%s%s", s->s_path, l->l_err);
		/* on any error the index is left alone */
		source_free_pods(l);
		s->s_state = SOURCE_IDLE;
		return;
	}
	s->s_pm->pm_stats.ps_bad_objects += l->l_bad;
	s->s_state = SOURCE_APPLYING;
	index_list_begin(s->s_pm->pm_index);
	source_apply(s);
}

/* Hand the open file fd to a new worker. */
static void
source_begin(struct source *s, int fd, const struct stat *st)
{
	struct load	*l = &s->s_load;
	sigset_t	 all, old;
	int		 rv;

	memset(l, 0, sizeof(*l));
	TAILQ_INIT(&l->l_pods);
	l->l_fd = fd;
	l->l_size = (size_t)st->st_size;
	/* signals are the loop's */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rv = pthread_create(&s->s_thread, NULL, source_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rv != 0) {
		log_warnx("%s: cannot start a thread to read it: %s",
		    s->s_path, strerror(rv));
		close(fd);
		s->s_tried = 0;		/* try again on the next tick */
		return;
	}
	s->s_state = SOURCE_LOADING;
	log_info("%s: loading %lld bytes", s->s_path, (long long)st->st_size);
}

static void
source_check(struct source *s)
{
	struct stat	 st;
	int		 fd;

	if (s->s_state != SOURCE_IDLE)
		return;		/* a change is seen once this load is in */
	if (stat(s->s_path, &st) == -1) {
		if (errno != s->s_errno)
			log_warn("%s", s->s_path);
		s->s_errno = errno;
		memset(&s->s_seen, 0, sizeof(s->s_seen));
		s->s_tried = 1;
		return;
	}
	s->s_errno = 0;
	if (s->s_tried && source_same(&st, &s->s_seen))
		return;
	s->s_seen = st;
	s->s_tried = 1;
	/* opening a FIFO waits for a writer; a device may do anything */
	if (!S_ISREG(st.st_mode)) {
		log_warnx("%s: not a regular file (%s): ignored", s->s_path,
		    source_kind(st.st_mode));
		return;
	}
	/* it may have been replaced since stat(): never block in open() */
	if ((fd = open(s->s_path, O_RDONLY | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC)) == -1) {
		log_warn("%s", s->s_path);
		return;
	}
	if (fstat(fd, &st) == -1) {
		log_warn("%s", s->s_path);
		close(fd);
		return;
	}
	s->s_seen = st;		/* what is read is what was opened */
	if (!S_ISREG(st.st_mode)) {
		log_warnx("%s: not a regular file (%s): ignored", s->s_path,
		    source_kind(st.st_mode));
		close(fd);
		return;
	}
	(void)fcntl(fd, F_SETFL, 0);
	source_begin(s, fd, &st);
}

static void
source_tick(struct ev_loop *l, ev_timer *w, int revents)
{
	source_check(w->data);
}

struct source *
source_start(struct podmeta *pm, const char *path)
{
	const struct podmeta_conf	*conf = &pm->pm_conf;
	struct source			*s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("source");
		return NULL;
	}
	if ((s->s_render = render_new(conf->pc_labels, conf->pc_annotations,
	    conf->pc_max_value)) == NULL) {
		free(s);
		return NULL;
	}
	/* jansson seeds its hash on the first object: before any thread */
	json_object_seed(0);
	s->s_pm = pm;
	s->s_path = path;
	TAILQ_INIT(&s->s_load.l_pods);
	s->s_load.l_fd = -1;
	ev_async_init(&s->s_done, source_done_cb);
	s->s_done.data = s;
	ev_async_start(pm->pm_loop, &s->s_done);
	ev_timer_init(&s->s_apply, source_apply_cb, 0., 0.);
	s->s_apply.data = s;
	source_check(s);
	ev_timer_init(&s->s_timer, source_tick, 1.0, 1.0);
	s->s_timer.data = s;
	ev_timer_start(pm->pm_loop, &s->s_timer);
	return s;
}

void
source_stop(struct source *s)
{
	if (s == NULL)
		return;
	if (s->s_state == SOURCE_LOADING) {
		/* the worker looks at l_stop between reads and between pods */
		__atomic_store_n(&s->s_load.l_stop, 1, __ATOMIC_RELAXED);
		pthread_join(s->s_thread, NULL);
		log_info("%s: load abandoned", s->s_path);
	} else if (s->s_state == SOURCE_APPLYING)
		log_info("%s: load abandoned", s->s_path);
	source_free_pods(&s->s_load);
	ev_async_stop(s->s_pm->pm_loop, &s->s_done);
	ev_timer_stop(s->s_pm->pm_loop, &s->s_apply);
	ev_timer_stop(s->s_pm->pm_loop, &s->s_timer);
	render_free(s->s_render);
	free(s);
}
