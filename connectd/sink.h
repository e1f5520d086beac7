/* sink.h: log outputs, private to sink.c (queue, threads, files) and sinknet.c (TCP, UDP, syslog) */
#ifndef SINK_H
#define SINK_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/*
 * Two files, by concern:
 *
 *   sink.c     the queue and its bound, the writer threads' lives (open,
 *              share, drain, abort, join), files, reports and counters
 *   sinknet.c  the writer of a network output: connect with backoff,
 *              TCP's acknowledged lines, datagrams, RFC 5424
 *
 * Everything in struct sink under "shared" is read and written under
 * s_mtx; the writer thread's own fields by that thread alone (and by
 * sink_open() before it starts).
 */

#define SINK_BATCH		64	/* lines per writev() */
#define SINK_QUEUE_INIT		64	/* initial ring slots */
#define SINK_REPORT_INTERVAL	10	/* seconds between drop/error reports */

/* TCP: a line written on the connection, not yet acknowledged */
struct sink_line {
	char			*sl_data;
	size_t			 sl_len;
	uint64_t		 sl_end;	/* stream offset just past it */
};

struct sink {
	enum access_log_kind	 s_kind;
	char			*s_name;	/* for messages and sink_name() */
	char			*s_key;		/* what sharing compares */
	char			*s_path;	/* a file; syslog: its socket */
	char			*s_host;	/* tcp, udp; syslog over UDP */
	char			*s_port;
	size_t			 s_linemax;	/* udp, syslog: longest line */
	int			 s_pri;		/* syslog: facility * 8 + severity */
	char			 s_hostname[256];	/* syslog HOSTNAME */
	char			 s_procid[24];		/* syslog PROCID */
	int			 s_refcnt;	/* main thread only */
	int			 s_std;		/* stdout/stderr: never reopened */
	int			 s_is_stderr;	/* same file as our diagnostics */
	int			 s_fd;		/* the writer thread's, once started */
	pthread_t		 s_thread;
	int			 s_joined;
	TAILQ_ENTRY(sink)	 s_entry;	/* main thread only */

	/* network outputs: the writer thread's own */
	struct sink_line	*s_fly;		/* TCP: ring of lines in flight */
	size_t			 s_flycap;
	size_t			 s_flyhead;
	size_t			 s_flylen;
	uint64_t		 s_sent;	/* TCP: bytes written on this
						   connection */
	double			 s_retry;	/* monotonic: next connect() */
	double			 s_backoff;	/* the wait after the next failure */
	double			 s_polled;	/* monotonic: acks last read */
	int			 s_connected;	/* ever: a connection is a reconnect */
	char			 s_peer[ADDR_STRLEN + 8];

	/* shared with the writer thread, under s_mtx */
	pthread_mutex_t		 s_mtx;
	pthread_cond_t		 s_wake;	/* work for the writer */
	pthread_cond_t		 s_idle;	/* queue drained, or exited */
	struct iovec		*s_q;		/* ring of owned lines */
	size_t			 s_qcap;
	size_t			 s_qhead;
	size_t			 s_qlen;
	size_t			 s_bytes;	/* queued, being written, in flight */
	size_t			 s_bufmax;
	int			 s_reopen;
	int			 s_stop;	/* drain, close, exit */
	int			 s_abort;	/* exit now, dropping the rest */
	int			 s_exited;
	int			 s_sleeping;	/* the writer waits on s_wake */
	int			 s_up;		/* a connection is up */
	size_t			 s_busy;	/* lines taken by the writer */
	uint64_t		 s_written;
	uint64_t		 s_dropped;
	uint64_t		 s_errors;	/* lines lost to write errors */
	uint64_t		 s_truncated;
	uint64_t		 s_reconnects;
	uint64_t		 s_connfail;	/* failed connects, broken
						   connections */
	int			 s_errno;	/* the last write error */
	char			 s_why[160];	/* the last connection failure */
	uint64_t		 s_rep_dropped;	/* counts already reported */
	uint64_t		 s_rep_errors;
	uint64_t		 s_rep_connfail;
	time_t			 s_rep_time;
	time_t			 s_rep_up;	/* the last "connected" message */
};

/* sink.c */
double	 sink_mono(void);
/* Room for one more line in the queue's ring; -1 if out of memory. */
int	 sink_grow_locked(struct sink *);
/*
 * New drops, errors and connection failures since the last report, in
 * msg, if the last report is SINK_REPORT_INTERVAL old (or final is set):
 * 1, and the caller logs msg once s_mtx is released.
 */
int	 sink_report_locked(struct sink *, int, char *, size_t);
/* The CLOCK_REALTIME time secs from now, for pthread_cond_timedwait(). */
void	 sink_deadline(struct timespec *, double);

/* sinknet.c */
/* Fills in what a network output's writer needs (sink_open()). */
int	 sink_net_init(struct sink *, const struct access_log_conf *);
/* The writer thread of a network output. */
void	*sink_net_main(void *);

#endif
