/* accesslog.c: the one place a log line is written: render, push to each access_log, or wait for helpers */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectd.h"

#define ACCESSLOG_PARK_MAX	8192	/* lines waiting for helper answers */

/*
 * A finished line whose pod field waits for a helper: it keeps its
 * configuration alive until it is written.
 */
struct logpark {
	struct worker		*lp_worker;
	struct conf		*lp_conf;	/* reference held */
	struct logrec		*lp_rec;
	struct helper_log	*lp_lookups;
	ev_timer		 lp_timer;	/* log-wait */
	TAILQ_ENTRY(logpark)	 lp_entry;
};

/*
 * Sinks are shared by path and refcounted, so opening the new
 * configuration's logs before the old one is closed keeps a file that
 * both name open across a reload.
 */
int
accesslog_open(struct conf *conf, char *err, size_t errlen)
{
	struct access_log_conf	*alc;

	TAILQ_FOREACH(alc, &conf->c_access_logs, alc_entry) {
		if (alc->alc_sink != NULL)
			continue;
		if ((alc->alc_sink = sink_open(alc, err, errlen)) == NULL) {
			accesslog_close(conf);
			return -1;
		}
	}
	return 0;
}

int
accesslog_check(const struct conf *conf, char *err, size_t errlen)
{
	struct access_log_conf	*alc;
	struct stat		 st;
	const char		*why = NULL, *slash;
	char			 dir[PATH_MAX];

	TAILQ_FOREACH(alc, &conf->c_access_logs, alc_entry) {
		/* a network output's spelling was checked by conf.c; it is
		   not connected to here: its receiver may well start later */
		if (alc->alc_kind != ALK_STDIO)
			continue;
		if (strcmp(alc->alc_path, "/dev/stdout") == 0 ||
		    strcmp(alc->alc_path, "/dev/stderr") == 0)
			continue;
		if (stat(alc->alc_path, &st) == 0) {
			if (S_ISDIR(st.st_mode))
				why = "a directory";
			else if (access(alc->alc_path, W_OK) == -1)
				why = strerror(errno);
		} else if (errno != ENOENT)
			why = strerror(errno);
		else {
			/* a new file: its directory must take it */
			slash = strrchr(alc->alc_path, '/');
			snprintf(dir, sizeof(dir), "%.*s", slash == NULL ? 1 :
			    slash == alc->alc_path ? 1 :
			    (int)(slash - alc->alc_path),
			    slash == NULL ? "." : alc->alc_path);
			if (stat(dir, &st) == -1)
				why = errno == ENOENT ? "its directory does not "
				    "exist" : strerror(errno);
			else if (!S_ISDIR(st.st_mode))
				why = "its directory is not a directory";
			else if (access(dir, W_OK | X_OK) == -1)
				why = "its directory is not writable";
		}
		if (why != NULL) {
			snprintf(err, errlen, "%s:%zu: %s cannot be opened: %s: "
			    "'%s'", conf->c_path, alc->alc_lineno,
			    alc->alc_path, why, alc->alc_line != NULL ?
			    alc->alc_line : "access_log");
			return -1;
		}
	}
	return 0;
}

void
accesslog_close(struct conf *conf)
{
	struct access_log_conf	*alc;

	if (conf == NULL)
		return;
	TAILQ_FOREACH(alc, &conf->c_access_logs, alc_entry) {
		if (alc->alc_sink == NULL)
			continue;
		sink_release(alc->alc_sink);
		alc->alc_sink = NULL;
	}
}

static const struct logformat *
accesslog_format(const struct access_log_conf *alc)
{
	if (alc->alc_format != NULL)
		return alc->alc_format;
	return logformat_builtin("json");
}

/*
 * Interim records go only to logs in the json format: no other format
 * can tell one from the tunnel's final line, and a reader summing the
 * bytes of every line would count them twice.
 */
static int
accesslog_takes(const struct access_log_conf *alc, const struct logrec *rec)
{
	return !rec->lr_interim ||
	    accesslog_format(alc) == logformat_builtin("json");
}

/*
 * Render rec once per format and push the lines to conf's sinks.  A line
 * too long for an output's datagrams is rendered again, shorter, for
 * that output alone (logformat_render_fit()): never cut in the sink,
 * which would leave invalid JSON.
 */
static void
accesslog_write(struct sink_stage *st, const struct conf *conf,
    const struct logrec *rec)
{
	struct access_log_conf	*alc, *next;
	const struct logformat	*fmt, *cfmt = NULL;
	char			*line, *cached = NULL;
	size_t			 clen = 0, max, len;

	TAILQ_FOREACH(alc, &conf->c_access_logs, alc_entry) {
		if (alc->alc_sink == NULL ||
		    (fmt = accesslog_format(alc)) == NULL ||
		    !accesslog_takes(alc, rec))
			continue;
		if (fmt != cfmt) {
			free(cached);
			cfmt = fmt;
			if ((cached = logformat_render(fmt, rec, &clen)) ==
			    NULL)
				continue;
		}
		if (cached == NULL)
			continue;
		if ((max = sink_line_max(alc->alc_sink)) > 0 && clen > max) {
			if ((line = logformat_render_fit(fmt, rec, max,
			    &len)) == NULL)
				sink_drop(alc->alc_sink);
			else
				sink_push(st, alc->alc_sink, line, len, 1);
			continue;
		}
		/* the sink owns what it is given: copy if a later log reuses it */
		for (next = TAILQ_NEXT(alc, alc_entry); next != NULL &&
		    (next->alc_sink == NULL || !accesslog_takes(next, rec));
		    next = TAILQ_NEXT(next, alc_entry))
			;
		if (next != NULL && accesslog_format(next) == fmt) {
			if ((line = malloc(clen)) == NULL)
				continue;
			memcpy(line, cached, clen);
		} else {
			line = cached;
			cached = NULL;
			cfmt = NULL;
		}
		sink_push(st, alc->alc_sink, line, clen, 0);
	}
	free(cached);
}

/* Write a parked line as it is now and forget it. */
static void
accesslog_unpark(struct logpark *lp, int expired)
{
	struct worker	*w = lp->lp_worker;

	ev_timer_stop(w->w_loop, &lp->lp_timer);
	TAILQ_REMOVE(&w->w_parked, lp, lp_entry);
	w->w_nparked--;
	helper_log_fill(lp->lp_lookups, lp->lp_rec, expired);
	accesslog_write(w->w_stage, lp->lp_conf, lp->lp_rec);
	helper_log_free(lp->lp_lookups);
	logrec_free(lp->lp_rec);
	conf_unref(lp->lp_conf);
	free(lp);
}

/* An answer arrived (at the end of a loop turn): is the line complete? */
static void
accesslog_answer_cb(void *arg)
{
	struct logpark	*lp = arg;

	if (helper_log_settled(lp->lp_lookups))
		accesslog_unpark(lp, 0);
}

static void
accesslog_timer_cb(EV_P_ ev_timer *t, int revents)
{
	accesslog_unpark(t->data, 1);
}

void
accesslog_submit(struct worker *w, struct conf *cf, struct logrec *rec,
    struct helper_log *hl)
{
	struct logpark	*lp;
	double		 wait;

	/* who writes the line: the names live as long as cf and w */
	rec->lr_proxy = cf->c_visible_hostname;
	rec->lr_instance = w->w_instance;
	/*
	 * Counted here, where every line is handed over, so that /metrics
	 * agrees with the log; an interim record is not a tunnel of its own.
	 */
	if (!rec->lr_interim)
		metrics_line(w, rec);
	if (hl != NULL && !w->w_stopping && w->w_nparked < ACCESSLOG_PARK_MAX &&
	    (lp = calloc(1, sizeof(*lp))) != NULL) {
		if ((wait = helper_log_park(hl, accesslog_answer_cb, lp)) > 0.) {
			lp->lp_worker = w;
			lp->lp_conf = conf_ref(cf);
			lp->lp_rec = rec;
			lp->lp_lookups = hl;
			ev_timer_init(&lp->lp_timer, accesslog_timer_cb, wait,
			    0.);
			lp->lp_timer.data = lp;
			ev_timer_start(w->w_loop, &lp->lp_timer);
			TAILQ_INSERT_TAIL(&w->w_parked, lp, lp_entry);
			w->w_nparked++;
			return;
		}
		free(lp);
	}
	if (hl != NULL)
		helper_log_fill(hl, rec, 0);
	accesslog_write(w->w_stage, cf, rec);
	helper_log_free(hl);
	logrec_free(rec);
}

void
accesslog_shutdown(struct worker *w)
{
	struct logpark	*lp;

	while ((lp = TAILQ_FIRST(&w->w_parked)) != NULL)
		accesslog_unpark(lp, 1);
}
