/* accesslog.c: a configuration's access_log lines: open, render, push, close */
#include <stdlib.h>
#include <string.h>

#include "connectd.h"

/*
 * Sinks are shared by path and refcounted, so opening the new
 * configuration's logs before the old one is closed keeps a file that
 * both name open across a reload.
 */
int
accesslog_open(struct conf *newconf, struct conf *oldconf, char *err,
    size_t errlen)
{
	struct access_log_conf	*alc;

	(void)oldconf;
	TAILQ_FOREACH(alc, &newconf->c_access_logs, alc_entry) {
		if (alc->alc_sink != NULL)
			continue;
		if ((alc->alc_sink = sink_open(alc->alc_path,
		    alc->alc_buffer_size, err, errlen)) == NULL)
			goto fail;
	}
	return 0;
 fail:
	accesslog_close(newconf);
	return -1;
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

void
accesslog_write(struct conf *conf, const struct logrec *rec)
{
	struct access_log_conf	*alc, *next;
	const struct logformat	*fmt, *cfmt = NULL;
	char			*line, *cached = NULL;
	size_t			 clen = 0;

	if (conf == NULL)
		return;
	TAILQ_FOREACH(alc, &conf->c_access_logs, alc_entry) {
		if (alc->alc_sink == NULL ||
		    (fmt = accesslog_format(alc)) == NULL)
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
		/* the sink owns what it is given: copy if a later log reuses it */
		for (next = TAILQ_NEXT(alc, alc_entry); next != NULL &&
		    next->alc_sink == NULL; next = TAILQ_NEXT(next, alc_entry))
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
		sink_push(alc->alc_sink, line, clen);
	}
	free(cached);
}
