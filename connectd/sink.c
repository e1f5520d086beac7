/* sink.c: log outputs that never block the loop: a bounded queue and a writer thread each (files here, the network in sinknet.c) */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connectd.h"
#include "sink.h"

#define SINK_BUFMAX_DEFAULT	(4 * 1024 * 1024)
#define SINK_ABORT_GRACE	0.2	/* seconds for a thread told to give up */

TAILQ_HEAD(sink_list, sink);
static struct sink_list	sink_live = TAILQ_HEAD_INITIALIZER(sink_live);
static struct sink_list	sink_dying = TAILQ_HEAD_INITIALIZER(sink_dying);

static void	*sink_main(void *);
static void	 sink_reap(void);
static void	 sink_free(struct sink *);

static const char *const sink_kinds[] = {
	[ALK_STDIO] = "stdio",
	[ALK_TCP] = "tcp",
	[ALK_UDP] = "udp",
	[ALK_SYSLOG] = "syslog",
};

double
sink_mono(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * What makes two access_log lines one output: the destination, and for
 * datagrams their size.  The name is what messages call it.
 */
static int
sink_names(struct sink *s, const struct access_log_conf *alc)
{
	char	 server[400];
	int	 v6;

	server[0] = '\0';
	if (alc->alc_kind == ALK_SYSLOG && alc->alc_host != NULL) {
		v6 = strchr(alc->alc_host, ':') != NULL;
		snprintf(server, sizeof(server), " server=udp://%s%s%s:%s",
		    v6 ? "[" : "", alc->alc_host, v6 ? "]" : "",
		    alc->alc_port);
	} else if (alc->alc_kind == ALK_SYSLOG && alc->alc_path != NULL)
		snprintf(server, sizeof(server), " server=unix:%s",
		    alc->alc_path);
	if (asprintf(&s->s_name, "%s%s", alc->alc_name, server) == -1) {
		s->s_name = NULL;
		return -1;
	}
	if (asprintf(&s->s_key, "%s %s datagram-size=%zu",
	    sink_kinds[alc->alc_kind], s->s_name,
	    alc->alc_datagram_size) == -1) {
		s->s_key = NULL;
		return -1;
	}
	return 0;
}

struct sink *
sink_open(const struct access_log_conf *alc, char *err, size_t errlen)
{
	struct sink	*s, *o;
	struct stat	 st, st2;
	sigset_t	 all, old;
	size_t		 bufmax = alc->alc_buffer_size;
	int		 rv;

	if (bufmax == 0)
		bufmax = SINK_BUFMAX_DEFAULT;
	if ((s = calloc(1, sizeof(*s))) == NULL || sink_names(s, alc) == -1) {
		snprintf(err, errlen, "%s: %s", alc->alc_name, strerror(ENOMEM));
		if (s != NULL) {
			free(s->s_name);
			free(s->s_key);
		}
		free(s);
		return NULL;
	}
	TAILQ_FOREACH(o, &sink_live, s_entry) {
		if (strcmp(o->s_key, s->s_key) != 0)
			continue;
		free(s->s_name);
		free(s->s_key);
		free(s);
		o->s_refcnt++;
		pthread_mutex_lock(&o->s_mtx);
		if (bufmax > o->s_bufmax)
			o->s_bufmax = bufmax;
		pthread_mutex_unlock(&o->s_mtx);
		return o;
	}
	sink_reap();

	s->s_kind = alc->alc_kind;
	s->s_fd = -1;
	if ((s->s_q = calloc(SINK_QUEUE_INIT, sizeof(*s->s_q))) == NULL ||
	    (alc->alc_path != NULL &&
	    (s->s_path = strdup(alc->alc_path)) == NULL) ||
	    (alc->alc_host != NULL &&
	    ((s->s_host = strdup(alc->alc_host)) == NULL ||
	    (s->s_port = strdup(alc->alc_port)) == NULL))) {
		snprintf(err, errlen, "%s: %s", s->s_name, strerror(ENOMEM));
		goto fail;
	}
	s->s_qcap = SINK_QUEUE_INIT;
	s->s_bufmax = bufmax;
	s->s_refcnt = 1;
	switch (s->s_kind) {
	case ALK_STDIO:
		if (strcmp(s->s_path, "/dev/stdout") == 0) {
			s->s_std = 1;
			s->s_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
		} else if (strcmp(s->s_path, "/dev/stderr") == 0) {
			s->s_std = 1;
			s->s_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
		} else
			s->s_fd = opener_open(s->s_path);
		if (s->s_fd == -1) {
			snprintf(err, errlen, "%s: %s", s->s_path,
			    errno == ENXIO ? "a FIFO with no reader" :
			    strerror(errno));
			goto fail;
		}
		if (fstat(s->s_fd, &st) == 0 &&
		    fstat(STDERR_FILENO, &st2) == 0 &&
		    st.st_dev == st2.st_dev && st.st_ino == st2.st_ino)
			s->s_is_stderr = 1;
		break;
	case ALK_TCP:
	case ALK_UDP:
	case ALK_SYSLOG:
		if (sink_net_init(s, alc) == -1) {
			snprintf(err, errlen, "%s: %s", s->s_name,
			    strerror(ENOMEM));
			goto fail;
		}
		break;
	}
	pthread_mutex_init(&s->s_mtx, NULL);
	pthread_cond_init(&s->s_wake, NULL);
	pthread_cond_init(&s->s_idle, NULL);

	/* signals stay with the event loop */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rv = pthread_create(&s->s_thread, NULL, s->s_kind == ALK_STDIO ?
	    sink_main : sink_net_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rv != 0) {
		snprintf(err, errlen, "%s: cannot start a writer thread: %s",
		    s->s_name, strerror(rv));
		pthread_cond_destroy(&s->s_idle);
		pthread_cond_destroy(&s->s_wake);
		pthread_mutex_destroy(&s->s_mtx);
		if (s->s_fd != -1)
			close(s->s_fd);
		goto fail;
	}
	TAILQ_INSERT_TAIL(&sink_live, s, s_entry);
	return s;
 fail:
	free(s->s_q);
	free(s->s_path);
	free(s->s_host);
	free(s->s_port);
	free(s->s_name);
	free(s->s_key);
	free(s);
	return NULL;
}

int
sink_grow_locked(struct sink *s)
{
	struct iovec	*q;
	size_t		 i, cap;

	if (s->s_qlen < s->s_qcap)
		return 0;
	cap = s->s_qcap * 2;
	if ((q = calloc(cap, sizeof(*q))) == NULL)
		return -1;
	for (i = 0; i < s->s_qlen; i++)
		q[i] = s->s_q[(s->s_qhead + i) % s->s_qcap];
	free(s->s_q);
	s->s_q = q;
	s->s_qcap = cap;
	s->s_qhead = 0;
	return 0;
}

/*
 * A worker's lines of one loop turn, in order, for any outputs: staged
 * without a lock, handed over at the end of the turn.
 */
struct sink_staged {
	struct sink		*ss_sink;
	char			*ss_line;
	size_t			 ss_len;
	int			 ss_truncated;
};

struct sink_stage {
	struct sink_staged	*st_v;
	size_t			 st_n;
	size_t			 st_cap;
};

struct sink_stage *
sink_stage_new(void)
{
	return calloc(1, sizeof(struct sink_stage));
}

/* Queue a line under s's lock, or drop and count it; 1 if dropped. */
static int
sink_enqueue_locked(struct sink *s, char *line, size_t len, int truncated)
{
	if (truncated)
		s->s_truncated++;
	if (s->s_stop || s->s_bytes > s->s_bufmax ||
	    len > s->s_bufmax - s->s_bytes || sink_grow_locked(s) == -1) {
		s->s_dropped++;
		return 1;
	}
	s->s_q[(s->s_qhead + s->s_qlen) % s->s_qcap].iov_base = line;
	s->s_q[(s->s_qhead + s->s_qlen) % s->s_qcap].iov_len = len;
	s->s_qlen++;
	s->s_bytes += len;
	return 0;
}

void
sink_push(struct sink_stage *st, struct sink *s, char *line, size_t len,
    int truncated)
{
	struct sink_staged	*v;

	if (s == NULL) {
		free(line);
		return;
	}
	if (st->st_n == st->st_cap) {
		if ((v = reallocarray(st->st_v, st->st_cap * 2 + 64,
		    sizeof(*v))) == NULL) {
			sink_drop(s);
			free(line);
			return;
		}
		st->st_v = v;
		st->st_cap = st->st_cap * 2 + 64;
	}
	v = &st->st_v[st->st_n++];
	v->ss_sink = s;
	v->ss_line = line;
	v->ss_len = len;
	v->ss_truncated = truncated;
}

/*
 * The end of a loop turn: each output gets the turn's lines for it in
 * one batch, under one lock, in the order they were staged, and its
 * writer is woken if it sleeps.  A turn's lines go to one or two
 * outputs, so the pass per output costs nothing worth a sort.
 */
void
sink_stage_flush(struct sink_stage *st)
{
	struct sink	*s;
	char		 msg[512];
	size_t		 i, j;
	int		 report, dropped;

	if (st == NULL)
		return;
	for (i = 0; i < st->st_n; i++) {
		if ((s = st->st_v[i].ss_sink) == NULL)
			continue;
		dropped = report = 0;
		pthread_mutex_lock(&s->s_mtx);
		for (j = i; j < st->st_n; j++) {
			if (st->st_v[j].ss_sink != s)
				continue;
			if (sink_enqueue_locked(s, st->st_v[j].ss_line,
			    st->st_v[j].ss_len, st->st_v[j].ss_truncated)) {
				free(st->st_v[j].ss_line);
				dropped = 1;
			}
			st->st_v[j].ss_sink = NULL;
		}
		/* a writer stuck on a full pipe cannot say so itself */
		if (dropped && !s->s_is_stderr)
			report = sink_report_locked(s, 0, msg, sizeof(msg));
		if (s->s_sleeping)
			pthread_cond_signal(&s->s_wake);
		pthread_mutex_unlock(&s->s_mtx);
		if (report)
			log_warnx("%s", msg);
	}
	st->st_n = 0;
}

void
sink_stage_free(struct sink_stage *st)
{
	if (st == NULL)
		return;
	sink_stage_flush(st);
	free(st->st_v);
	free(st);
}

void
sink_drop(struct sink *s)
{
	char	 msg[512];
	int	 report;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->s_mtx);
	s->s_dropped++;
	report = sink_report_locked(s, 0, msg, sizeof(msg));
	pthread_mutex_unlock(&s->s_mtx);
	if (report)
		log_warnx("%s", msg);
}

size_t
sink_line_max(const struct sink *s)
{
	return s != NULL ? s->s_linemax : 0;
}

int
sink_report_locked(struct sink *s, int final, char *msg, size_t msglen)
{
	uint64_t	 dropped, errors, connfail;
	time_t		 now;
	int		 n = 0, m;

	dropped = s->s_dropped - s->s_rep_dropped;
	errors = s->s_errors - s->s_rep_errors;
	connfail = s->s_connfail - s->s_rep_connfail;
	if (dropped == 0 && errors == 0 && connfail == 0)
		return 0;
	now = time(NULL);
	if (!final && now < s->s_rep_time + SINK_REPORT_INTERVAL)
		return 0;
	s->s_rep_time = now;
	s->s_rep_dropped = s->s_dropped;
	s->s_rep_errors = s->s_errors;
	s->s_rep_connfail = s->s_connfail;
	msg[0] = '\0';
	if (dropped > 0)
		n = snprintf(msg, msglen, "access log %s: %llu lines dropped "
		    "(queue full)", s->s_name, (unsigned long long)dropped);
	if (errors > 0 && n >= 0 && (size_t)n < msglen &&
	    (m = snprintf(msg + n, msglen - (size_t)n, "%saccess log %s: "
	    "%llu lines lost to write errors (%s)", n > 0 ? "; " : "",
	    s->s_name, (unsigned long long)errors,
	    strerror(s->s_errno))) > 0)
		n += m;
	if (connfail > 0 && n >= 0 && (size_t)n < msglen)
		snprintf(msg + n, msglen - (size_t)n, "%saccess log %s: %llu "
		    "connection failures (%s), %s", n > 0 ? "; " : "",
		    s->s_name, (unsigned long long)connfail, s->s_why,
		    s->s_up ? "connected again" : "retrying with backoff");
	return 1;
}

/* The writer thread: reopen the file if asked, else close it. */
static void
sink_reopen_fd(struct sink *s)
{
	int	 fd;

	if (s->s_std)
		return;
	if ((fd = opener_open(s->s_path)) == -1) {
		log_warn("access log %s: reopen failed, still writing to "
		    "the old file", s->s_path);
		return;
	}
	if (s->s_fd != -1)
		close(s->s_fd);
	s->s_fd = fd;
}

/*
 * A write failed after partial bytes of a line went out (a full disk
 * takes what fits): take them back, so that no reader ever sees half a
 * line, nor one glued to the next line once there is room again.  Only
 * a regular file can be cut; the file must end where the torn line does.
 */
static void
sink_untear(struct sink *s, size_t partial)
{
	struct stat	 st;

	if (partial == 0 || fstat(s->s_fd, &st) == -1 ||
	    !S_ISREG(st.st_mode) || (size_t)st.st_size < partial)
		return;
	if (ftruncate(s->s_fd, st.st_size - (off_t)partial) == -1)
		log_warn("access log %s: cannot take back a torn line",
		    s->s_path);
}

/*
 * Writes iov[0..n) completely.  Returns 0, or an errno with *done set to
 * the lines written in full before the error; the part of the next line
 * written, if any, is taken back.
 */
static int
sink_writev(struct sink *s, struct iovec *iov, int n, int *done)
{
	struct pollfd	 pfd;
	struct iovec	*v = iov;
	ssize_t		 w;
	size_t		 partial = 0;	/* of the line at v */
	int		 cnt = n, abort;

	*done = 0;
	while (cnt > 0) {
		if ((w = writev(s->s_fd, v, cnt)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				w = errno;
				sink_untear(s, partial);
				return (int)w;
			}
			/* an inherited non-blocking stdout */
			pfd.fd = s->s_fd;
			pfd.events = POLLOUT;
			(void)poll(&pfd, 1, 500);
			pthread_mutex_lock(&s->s_mtx);
			abort = s->s_abort;
			pthread_mutex_unlock(&s->s_mtx);
			if (abort)
				return ECANCELED;
			continue;
		}
		while (cnt > 0 && (size_t)w >= v->iov_len) {
			w -= (ssize_t)v->iov_len;
			v++;
			cnt--;
			(*done)++;
			partial = 0;
		}
		if (cnt > 0) {
			v->iov_base = (char *)v->iov_base + w;
			v->iov_len -= (size_t)w;
			partial += (size_t)w;
		}
	}
	return 0;
}

static void *
sink_main(void *arg)
{
	struct sink	*s = arg;
	struct iovec	 iov[SINK_BATCH];
	char		*lines[SINK_BATCH], msg[512];
	struct timespec	 deadline;
	size_t		 bytes;
	int		 i, n, done, error, reopen;

	pthread_mutex_lock(&s->s_mtx);
	for (;;) {
		while (s->s_qlen == 0 && !s->s_reopen && !s->s_stop &&
		    !s->s_abort) {
			if (s->s_dropped == s->s_rep_dropped &&
			    s->s_errors == s->s_rep_errors) {
				s->s_sleeping = 1;
				pthread_cond_wait(&s->s_wake, &s->s_mtx);
				s->s_sleeping = 0;
				continue;
			}
			/* unreported drops: wake up in time to report them */
			if (sink_report_locked(s, 0, msg, sizeof(msg))) {
				pthread_mutex_unlock(&s->s_mtx);
				log_warnx("%s", msg);
				pthread_mutex_lock(&s->s_mtx);
				continue;
			}
			deadline.tv_sec = s->s_rep_time + SINK_REPORT_INTERVAL;
			deadline.tv_nsec = 0;
			s->s_sleeping = 1;
			pthread_cond_timedwait(&s->s_wake, &s->s_mtx,
			    &deadline);
			s->s_sleeping = 0;
		}
		if (s->s_abort) {
			while (s->s_qlen > 0) {
				free(s->s_q[s->s_qhead].iov_base);
				s->s_bytes -= s->s_q[s->s_qhead].iov_len;
				s->s_qhead = (s->s_qhead + 1) % s->s_qcap;
				s->s_qlen--;
				s->s_dropped++;
			}
			break;
		}
		if (s->s_qlen == 0 && !s->s_reopen && s->s_stop)
			break;
		reopen = s->s_reopen;
		s->s_reopen = 0;
		for (n = 0, bytes = 0; n < SINK_BATCH && s->s_qlen > 0; n++) {
			iov[n] = s->s_q[s->s_qhead];
			lines[n] = iov[n].iov_base;
			bytes += iov[n].iov_len;
			s->s_qhead = (s->s_qhead + 1) % s->s_qcap;
			s->s_qlen--;
		}
		s->s_busy = (size_t)n;
		pthread_mutex_unlock(&s->s_mtx);

		if (reopen)
			sink_reopen_fd(s);
		error = done = 0;
		if (n > 0)
			error = sink_writev(s, iov, n, &done);
		for (i = 0; i < n; i++)
			free(lines[i]);

		pthread_mutex_lock(&s->s_mtx);
		s->s_bytes -= bytes;
		s->s_busy = 0;
		s->s_written += (uint64_t)done;
		if (error) {
			s->s_errors += (uint64_t)(n - done);
			s->s_errno = error;
		}
		if (s->s_qlen == 0)
			pthread_cond_broadcast(&s->s_idle);
		if (sink_report_locked(s, 0, msg, sizeof(msg))) {
			pthread_mutex_unlock(&s->s_mtx);
			log_warnx("%s", msg);
			pthread_mutex_lock(&s->s_mtx);
		}
	}
	if (s->s_fd != -1)
		close(s->s_fd);
	s->s_fd = -1;
	/* whatever is left unreported goes out now, rate or not */
	if (sink_report_locked(s, 1, msg, sizeof(msg))) {
		pthread_mutex_unlock(&s->s_mtx);
		log_warnx("%s", msg);
		pthread_mutex_lock(&s->s_mtx);
	}
	s->s_exited = 1;
	pthread_cond_broadcast(&s->s_idle);
	pthread_mutex_unlock(&s->s_mtx);
	return NULL;
}

void
sink_reopen_all(void)
{
	struct sink	*s;

	TAILQ_FOREACH(s, &sink_live, s_entry) {
		if (s->s_std)
			continue;
		pthread_mutex_lock(&s->s_mtx);
		s->s_reopen = 1;
		pthread_cond_signal(&s->s_wake);
		pthread_mutex_unlock(&s->s_mtx);
	}
}

static void
sink_stop(struct sink *s)
{
	TAILQ_REMOVE(&sink_live, s, s_entry);
	pthread_mutex_lock(&s->s_mtx);
	s->s_stop = 1;
	pthread_cond_signal(&s->s_wake);
	pthread_mutex_unlock(&s->s_mtx);
	TAILQ_INSERT_TAIL(&sink_dying, s, s_entry);
}

/* The last reference drains in the background; sink_flush_all() waits. */
void
sink_release(struct sink *s)
{
	if (s == NULL || --s->s_refcnt > 0)
		return;
	sink_stop(s);
	sink_reap();
}

static void
sink_free(struct sink *s)
{
	size_t	 i;

	for (i = 0; i < s->s_qlen; i++)
		free(s->s_q[(s->s_qhead + i) % s->s_qcap].iov_base);
	for (i = 0; i < s->s_flylen; i++)
		free(s->s_fly[(s->s_flyhead + i) % s->s_flycap].sl_data);
	pthread_cond_destroy(&s->s_idle);
	pthread_cond_destroy(&s->s_wake);
	pthread_mutex_destroy(&s->s_mtx);
	free(s->s_q);
	free(s->s_fly);
	free(s->s_path);
	free(s->s_host);
	free(s->s_port);
	free(s->s_name);
	free(s->s_key);
	free(s);
}

/* Joins the stopped sinks whose threads are done. */
static void
sink_reap(void)
{
	struct sink	*s, *next;
	int		 exited;

	for (s = TAILQ_FIRST(&sink_dying); s != NULL; s = next) {
		next = TAILQ_NEXT(s, s_entry);
		pthread_mutex_lock(&s->s_mtx);
		exited = s->s_exited;
		pthread_mutex_unlock(&s->s_mtx);
		if (!exited)
			continue;
		if (!s->s_joined)
			pthread_join(s->s_thread, NULL);
		TAILQ_REMOVE(&sink_dying, s, s_entry);
		sink_free(s);
	}
}

void
sink_deadline(struct timespec *ts, double secs)
{
	clock_gettime(CLOCK_REALTIME, ts);
	if (secs < 0)
		secs = 0;
	ts->tv_sec += (time_t)secs;
	ts->tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Waits for the thread until the deadline; 1 if it has exited. */
static int
sink_wait(struct sink *s, const struct timespec *deadline, int abort,
    size_t *qlen)
{
	int	 exited;

	pthread_mutex_lock(&s->s_mtx);
	while (!s->s_exited && pthread_cond_timedwait(&s->s_idle,
	    &s->s_mtx, deadline) != ETIMEDOUT)
		;
	if (!s->s_exited && abort) {
		s->s_abort = 1;
		pthread_cond_signal(&s->s_wake);
	}
	exited = s->s_exited;
	if (qlen != NULL)
		*qlen = s->s_qlen;
	pthread_mutex_unlock(&s->s_mtx);
	return exited;
}

/*
 * At exit: every queue gets up to timeout seconds to drain, then the
 * threads are told to give up.  A thread blocked in write(2) on a pipe
 * nobody reads cannot be interrupted; it is left behind for exit(3).
 * Sinks still referenced stay allocated, stopped: pushes to them drop.
 */
void
sink_flush_all(double timeout)
{
	struct sink	*s;
	struct timespec	 deadline;
	size_t		 qlen;

	TAILQ_FOREACH(s, &sink_live, s_entry) {
		pthread_mutex_lock(&s->s_mtx);
		s->s_stop = 1;
		pthread_cond_signal(&s->s_wake);
		pthread_mutex_unlock(&s->s_mtx);
	}
	sink_deadline(&deadline, timeout);
	TAILQ_FOREACH(s, &sink_live, s_entry)
		(void)sink_wait(s, &deadline, 1, NULL);
	TAILQ_FOREACH(s, &sink_dying, s_entry)
		(void)sink_wait(s, &deadline, 1, NULL);
	sink_deadline(&deadline, SINK_ABORT_GRACE);
	TAILQ_FOREACH(s, &sink_live, s_entry) {
		if (!sink_wait(s, &deadline, 0, &qlen)) {
			log_warnx("access log %s: writer blocked, %zu lines "
			    "not written at exit", s->s_name, qlen);
			continue;
		}
		if (!s->s_joined) {
			pthread_join(s->s_thread, NULL);
			s->s_joined = 1;
		}
	}
	TAILQ_FOREACH(s, &sink_dying, s_entry)
		if (!sink_wait(s, &deadline, 0, &qlen))
			log_warnx("access log %s: writer blocked, %zu lines "
			    "not written at exit", s->s_name, qlen);
	sink_reap();
}

void
sink_stats(struct sink *s, struct sink_counters *sc)
{
	memset(sc, 0, sizeof(*sc));
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->s_mtx);
	sc->sc_written = s->s_written;
	sc->sc_dropped = s->s_dropped;
	sc->sc_errors = s->s_errors;
	sc->sc_truncated = s->s_truncated;
	sc->sc_reconnects = s->s_reconnects;
	sc->sc_connect_failures = s->s_connfail;
	sc->sc_queued = s->s_qlen + s->s_busy;
	sc->sc_queued_bytes = s->s_bytes;
	sc->sc_connected = s->s_kind == ALK_STDIO ? !s->s_exited : s->s_up;
	pthread_mutex_unlock(&s->s_mtx);
}

struct sink *
sink_next(const struct sink *s)
{
	return s == NULL ? TAILQ_FIRST(&sink_live) : TAILQ_NEXT(s, s_entry);
}

const char *
sink_kind(const struct sink *s)
{
	return sink_kinds[s->s_kind];
}

const char *
sink_name(const struct sink *s)
{
	return s->s_name;
}

/*
 * One line per output.  The first counts are worded as they always
 * were (scripts and tests read them); a network output adds its own.
 */
void
sink_stats_log(void)
{
	struct sink_counters	 sc;
	struct sink		*s;

	TAILQ_FOREACH(s, &sink_live, s_entry) {
		sink_stats(s, &sc);
		if (s->s_kind == ALK_STDIO) {
			log_info("access log %s: %llu lines written, %llu "
			    "dropped, %llu write errors, %zu queued (%zu "
			    "bytes)", s->s_name,
			    (unsigned long long)sc.sc_written,
			    (unsigned long long)sc.sc_dropped,
			    (unsigned long long)sc.sc_errors, sc.sc_queued,
			    sc.sc_queued_bytes);
			continue;
		}
		log_info("access log %s: %llu lines written, %llu dropped, "
		    "%llu write errors, %zu queued (%zu bytes), %llu "
		    "truncated, %llu reconnects, %llu connection failures, %s",
		    s->s_name, (unsigned long long)sc.sc_written,
		    (unsigned long long)sc.sc_dropped,
		    (unsigned long long)sc.sc_errors, sc.sc_queued,
		    sc.sc_queued_bytes, (unsigned long long)sc.sc_truncated,
		    (unsigned long long)sc.sc_reconnects,
		    (unsigned long long)sc.sc_connect_failures,
		    sc.sc_connected ? "connected" : "not connected");
	}
}

