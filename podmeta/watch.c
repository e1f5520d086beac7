/* watch.c: list then watch pods or namespaces: libcurl multi in podmeta's libev loop, bookmarks, 410, backoff */
#include <sys/types.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "podmeta.h"

#define LIST_LIMIT		500
#define LIST_BODY_MAX		(512UL * 1024 * 1024)
#define WATCH_LINE_MAX		(16UL * 1024 * 1024)
#define ERROR_BODY_MAX		4096
#define BACKOFF_MIN		0.8
#define BACKOFF_MAX		30.0
#define BACKOFF_RESET		120.0	/* healthy this long: start over */
#define RETRY_AFTER_MAX		600
#define TOKEN_REREAD		60.0

enum watch_phase {
	WP_IDLE,
	WP_LIST,
	WP_WATCH
};

/* Why a write callback stopped a transfer. */
enum watch_verdict {
	WV_NONE,
	WV_FAIL,		/* bad data: retry after a backoff */
	WV_RELIST		/* an ERROR event with code 410 */
};

/* One socket libcurl wants watched. */
struct sockwatch {
	ev_io		 sw_io;		/* data: the struct watch */
};

/*
 * What is listed and watched: pods into the index, or (--policy)
 * namespaces into the namespace defaults.  A table, so that the list,
 * watch, 410 and backoff logic is written once.
 */
struct watch_ops {
	const char	*wo_what;	/* log prefix: "" or "namespaces " */
	const char	*wo_noun;	/* "pods", "namespaces" */
	int		 wo_namespaces;
	void		(*wo_begin)(struct podmeta *);
	void		(*wo_add)(struct podmeta *, json_t *, const char *);
	void		(*wo_delete)(struct podmeta *, json_t *);
	void		(*wo_end)(struct podmeta *);
};

static void
pods_begin(struct podmeta *pm)
{
	index_list_begin(pm->pm_index);
}

static void
pods_add(struct podmeta *pm, json_t *obj, const char *what)
{
	podmeta_add_pod(pm, obj, what);
}

static void
pods_delete(struct podmeta *pm, json_t *obj)
{
	const char	*uid;

	if ((uid = render_uid(obj)) != NULL)
		index_delete(pm->pm_index, uid, ev_now(pm->pm_loop));
	else
		pm->pm_stats.ps_bad_objects++;
}

static void
pods_end(struct podmeta *pm)
{
	index_list_end(pm->pm_index, ev_now(pm->pm_loop));
}

static void
ns_begin(struct podmeta *pm)
{
	ns_list_begin(pm->pm_ns);
}

static void
ns_add(struct podmeta *pm, json_t *obj, const char *what)
{
	pm->pm_stats.ps_ns_events++;
	if (ns_upsert(pm->pm_ns, obj) == -1)
		pm->pm_stats.ps_bad_objects++;
}

static void
ns_del(struct podmeta *pm, json_t *obj)
{
	pm->pm_stats.ps_ns_events++;
	ns_delete(pm->pm_ns, obj);
}

static void
ns_end(struct podmeta *pm)
{
	ns_list_end(pm->pm_ns);
}

static const struct watch_ops watch_pods = {
	"", "pods", 0, pods_begin, pods_add, pods_delete, pods_end
};
static const struct watch_ops watch_namespaces = {
	"namespaces ", "namespaces", 1, ns_begin, ns_add, ns_del, ns_end
};

struct watch {
	const struct watch_ops	*w_ops;
	struct podmeta		*w_pm;
	CURLM			*w_multi;
	CURL			*w_list;
	CURL			*w_watch;
	struct curl_slist	*w_hdrs;
	enum watch_phase	 w_phase;
	enum watch_verdict	 w_verdict;
	struct buf		 w_buf;		/* list body or partial line */
	size_t			 w_scanned;	/* of w_buf, known free of \n */
	char			*w_rv;		/* last resourceVersion seen */
	char			*w_continue;	/* next list page */
	int			 w_need_relist;
	unsigned long		 w_nevents;	/* in the current watch */
	double			 w_started;
	double			 w_backoff;
	double			 w_last_fail;
	double			 w_last_list;
	ev_timer		 w_curl_timer;
	ev_timer		 w_retry;
	ev_timer		 w_token;
};

static void	 watch_list(struct watch *);
static void	 watch_watch(struct watch *);

static void
watch_setstr(char **dst, const char *src)
{
	char	*s = NULL;

	if (src != NULL && (s = strdup(src)) == NULL)
		fatal("strdup");
	free(*dst);
	*dst = s;
}

/* Append to w_buf, which holds at most max bytes for this response. */
static int
watch_append(struct watch *w, const char *data, size_t len, size_t max)
{
	w->w_buf.b_max = max;
	return buf_add(&w->w_buf, data, len);
}

/* Drop big buffers between transfers so memory follows the pod count. */
static void
watch_buf_reset(struct watch *w)
{
	if (w->w_buf.b_cap > 1024 * 1024)
		buf_free(&w->w_buf);
	else
		buf_reset(&w->w_buf);
	w->w_scanned = 0;
}

/* --------------------------------------------------- curl <-> libev */

static void	watch_check(struct watch *);

static void
watch_io_cb(struct ev_loop *l, ev_io *io, int revents)
{
	struct watch	*w = io->data;
	int		 action = 0, running, fd = io->fd;

	if (revents & EV_READ)
		action |= CURL_CSELECT_IN;
	if (revents & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(w->w_multi, fd, action, &running);
	watch_check(w);
}

static void
watch_timer_cb(struct ev_loop *l, ev_timer *t, int revents)
{
	struct watch	*w = t->data;
	int		 running;

	curl_multi_socket_action(w->w_multi, CURL_SOCKET_TIMEOUT, 0, &running);
	watch_check(w);
}

static int
watch_sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct watch		*w = userp;
	struct sockwatch	*sw = sockp;
	int			 events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (sw != NULL) {
			ev_io_stop(w->w_pm->pm_loop, &sw->sw_io);
			free(sw);
			curl_multi_assign(w->w_multi, fd, NULL);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	if (sw == NULL) {
		if ((sw = calloc(1, sizeof(*sw))) == NULL)
			return -1;
		ev_io_init(&sw->sw_io, watch_io_cb, fd, events);
		sw->sw_io.data = w;
		curl_multi_assign(w->w_multi, fd, sw);
	} else {
		ev_io_stop(w->w_pm->pm_loop, &sw->sw_io);
		ev_io_set(&sw->sw_io, fd, events);
	}
	ev_io_start(w->w_pm->pm_loop, &sw->sw_io);
	return 0;
}

static int
watch_curl_timer(CURLM *m, long ms, void *userp)
{
	struct watch	*w = userp;

	ev_timer_stop(w->w_pm->pm_loop, &w->w_curl_timer);
	if (ms >= 0) {
		ev_timer_set(&w->w_curl_timer, ms / 1000.0, 0.0);
		ev_timer_start(w->w_pm->pm_loop, &w->w_curl_timer);
	}
	return 0;
}

/* ----------------------------------------------------------- requests */

static char *
watch_url(struct watch *w, int watching)
{
	const struct podmeta_conf *conf = &w->w_pm->pm_conf;
	const char	*server = kube_server(w->w_pm->pm_kube);
	char		*path = NULL, *ns = NULL, *sel = NULL, *arg = NULL;
	char		*url;
	int		 rc;

	if (w->w_ops->wo_namespaces)
		rc = asprintf(&path, "%s/api/v1/namespaces", server);
	else if (conf->pc_namespace != NULL) {
		ns = curl_easy_escape(w->w_list, conf->pc_namespace, 0);
		rc = asprintf(&path, "%s/api/v1/namespaces/%s/pods", server,
		    ns != NULL ? ns : "");
	} else
		rc = asprintf(&path, "%s/api/v1/pods", server);
	curl_free(ns);
	if (rc == -1)
		fatal("asprintf");
	url = path;
	/* namespaces: the one podmeta serves, if it serves one */
	if (w->w_ops->wo_namespaces ? conf->pc_namespace != NULL :
	    conf->pc_node != NULL) {
		if (asprintf(&arg, w->w_ops->wo_namespaces ?
		    "metadata.name=%s" : "spec.nodeName=%s",
		    w->w_ops->wo_namespaces ? conf->pc_namespace :
		    conf->pc_node) == -1)
			fatal("asprintf");
		sel = curl_easy_escape(w->w_list, arg, 0);
		free(arg);
	}
	if (watching) {
		arg = w->w_rv != NULL ?
		    curl_easy_escape(w->w_list, w->w_rv, 0) : NULL;
		rc = asprintf(&url, "%s?watch=1&allowWatchBookmarks=true"
		    "&timeoutSeconds=%d%s%s%s%s", path,
		    300 + (int)(arc4random_uniform(301)),
		    arg != NULL ? "&resourceVersion=" : "",
		    arg != NULL ? arg : "",
		    sel != NULL ? "&fieldSelector=" : "",
		    sel != NULL ? sel : "");
	} else {
		arg = w->w_continue != NULL ?
		    curl_easy_escape(w->w_list, w->w_continue, 0) : NULL;
		rc = asprintf(&url, "%s?limit=%d%s%s%s%s", path,
		    LIST_LIMIT,
		    sel != NULL ? "&fieldSelector=" : "",
		    sel != NULL ? sel : "",
		    arg != NULL ? "&continue=" : "",
		    arg != NULL ? arg : "");
	}
	curl_free(arg);
	curl_free(sel);
	free(path);
	if (rc == -1)
		fatal("asprintf");
	return url;
}

static size_t	watch_list_write(char *, size_t, size_t, void *);
static size_t	watch_stream_write(char *, size_t, size_t, void *);

static void
watch_start_transfer(struct watch *w, CURL *e, enum watch_phase phase)
{
	char	*url;

	url = watch_url(w, phase == WP_WATCH);
	log_debug("GET %s", url);
	watch_buf_reset(w);
	w->w_verdict = WV_NONE;
	w->w_nevents = 0;
	w->w_started = ev_now(w->w_pm->pm_loop);
	w->w_phase = phase;
	curl_slist_free_all(w->w_hdrs);
	if ((w->w_hdrs = kube_headers(w->w_pm->pm_kube)) == NULL)
		fatal("kube_headers");
	curl_easy_reset(e);
	kube_easy_setup(w->w_pm->pm_kube, e, url);
	free(url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, w->w_hdrs);
	if (phase == WP_WATCH) {
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, watch_stream_write);
		curl_easy_setopt(e, CURLOPT_TIMEOUT, 600L + 60L);
	} else {
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, watch_list_write);
		curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
	}
	curl_easy_setopt(e, CURLOPT_WRITEDATA, w);
	if (curl_multi_add_handle(w->w_multi, e) != CURLM_OK)
		fatalx("curl_multi_add_handle failed");
}

static void
watch_list(struct watch *w)
{
	watch_start_transfer(w, w->w_list, WP_LIST);
}

/* Watch from the last resourceVersion, or list first if that is needed. */
static void
watch_watch(struct watch *w)
{
	if (w->w_need_relist) {
		watch_setstr(&w->w_continue, NULL);
		watch_list(w);
		return;
	}
	watch_start_transfer(w, w->w_watch, WP_WATCH);
}

static void
watch_retry_cb(struct ev_loop *l, ev_timer *t, int revents)
{
	watch_watch(t->data);
}

/* Count an API error and try again after a backoff (or Retry-After). */
static void
watch_fail(struct watch *w, long retry_after, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
watch_fail(struct watch *w, long retry_after, const char *fmt, ...)
{
	struct ev_loop	*loop = w->w_pm->pm_loop;
	char		 msg[512];
	va_list		 ap;
	double		 now = ev_now(loop), delay;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->w_pm->pm_stats.ps_api_errors++;
	w->w_phase = WP_IDLE;
	if (now - w->w_last_fail > BACKOFF_RESET)
		w->w_backoff = 0;
	w->w_backoff = w->w_backoff == 0 ? BACKOFF_MIN :
	    w->w_backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : w->w_backoff * 2;
	w->w_last_fail = now;
	/* jitter: 75% to 125% of the step */
	delay = w->w_backoff * (0.75 + arc4random_uniform(501) / 1000.0);
	if (retry_after > 0)
		delay = retry_after > RETRY_AFTER_MAX ? RETRY_AFTER_MAX :
		    (double)retry_after;
	log_warnx("%s%s; retrying in %.1fs", w->w_ops->wo_what, msg, delay);
	ev_timer_stop(loop, &w->w_retry);
	ev_timer_set(&w->w_retry, delay, 0.0);
	ev_timer_start(loop, &w->w_retry);
}

static long
watch_retry_after(CURL *e)
{
	curl_off_t	ra = 0;

	if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK)
		return 0;
	return (long)ra;
}

/* An HTTP status other than 200: 401 re-reads the token, 429 waits. */
static void
watch_http_error(struct watch *w, CURL *e, long code, const char *what)
{
	const char	*body = w->w_buf.b_len > 0 ? w->w_buf.b_data : "";
	int		 len = w->w_buf.b_len > 200 ? 200 : (int)w->w_buf.b_len;

	if (code == 401)
		kube_token_reload(w->w_pm->pm_kube);
	/* RBAC: podmeta's role lacks list/watch on what it asks for */
	watch_fail(w, code == 429 ? watch_retry_after(e) : 0,
	    "%s: HTTP %ld: %.*s%s%s%s", what, code, len, body,
	    code == 403 ? " (podmeta needs list and watch on " : "",
	    code == 403 ? w->w_ops->wo_noun : "", code == 403 ? ")" : "");
}

/* ------------------------------------------------------------- list */

static size_t
watch_list_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct watch	*w = arg;
	long		 code = 0;

	curl_easy_getinfo(w->w_list, CURLINFO_RESPONSE_CODE, &code);
	if (watch_append(w, data, size * nmemb, code == 200 ? LIST_BODY_MAX :
	    ERROR_BODY_MAX) == -1) {
		if (code != 200)
			return size * nmemb;	/* keep the start of it */
		log_warnx("list: response too large or out of memory");
		w->w_verdict = WV_FAIL;
		return 0;
	}
	return size * nmemb;
}

/* Apply one page; returns 1 if another page follows, 0 at the end, -1 if bad. */
static int
watch_list_page(struct watch *w)
{
	struct podmeta	*pm = w->w_pm;
	json_error_t	 err;
	json_t		*root, *items, *item, *meta;
	const char	*cont, *rv;
	size_t		 i;

	if ((root = json_loadb(w->w_buf.b_data, w->w_buf.b_len, 0,
	    &err)) == NULL) {
		watch_fail(w, 0, "list: bad JSON at byte %d: %s",
		    err.position, err.text);
		return -1;
	}
	/* key on items, not kind */
	items = json_object_get(root, "items");
	if (!json_is_array(items)) {
		json_decref(root);
		watch_fail(w, 0, "list: no \"items\" array");
		return -1;
	}
	if (w->w_continue == NULL)
		w->w_ops->wo_begin(pm);
	json_array_foreach(items, i, item)
		w->w_ops->wo_add(pm, item, "list");
	meta = json_object_get(root, "metadata");
	cont = json_string_value(json_object_get(meta, "continue"));
	rv = json_string_value(json_object_get(meta, "resourceVersion"));
	if (cont != NULL && *cont != '\0') {
		watch_setstr(&w->w_continue, cont);
		json_decref(root);
		return 1;
	}
	watch_setstr(&w->w_continue, NULL);
	watch_setstr(&w->w_rv, rv != NULL && *rv != '\0' ? rv : NULL);
	json_decref(root);
	return 0;
}

static void
watch_list_done(struct watch *w, CURLcode rc)
{
	struct podmeta	*pm = w->w_pm;
	long		 code = 0;
	size_t		 live, tombs, addrs;

	curl_easy_getinfo(w->w_list, CURLINFO_RESPONSE_CODE, &code);
	if (w->w_verdict == WV_FAIL) {
		watch_fail(w, 0, "list: aborted");
		return;
	}
	if (rc != CURLE_OK) {
		watch_fail(w, 0, "list: %s", curl_easy_strerror(rc));
		return;
	}
	if (code == 410 && w->w_continue != NULL) {
		/* the continue token expired: start the list over */
		log_warnx("%slist: continue token expired; listing again",
		    w->w_ops->wo_what);
		watch_setstr(&w->w_continue, NULL);
		watch_list(w);
		return;
	}
	if (code != 200) {
		watch_http_error(w, w->w_list, code, "list");
		return;
	}
	switch (watch_list_page(w)) {
	case -1:
		return;
	case 1:
		watch_list(w);
		return;
	}
	w->w_ops->wo_end(pm);
	w->w_need_relist = 0;
	w->w_last_list = ev_now(pm->pm_loop);
	if (w->w_ops->wo_namespaces)
		log_info("namespaces list: %zu namespaces, resourceVersion %s",
		    ns_count(pm->pm_ns), w->w_rv != NULL ? w->w_rv : "(none)");
	else {
		if (pm->pm_stats.ps_lists++ > 0)
			pm->pm_stats.ps_relists++;
		index_counts(pm->pm_index, &live, &tombs, &addrs);
		log_info("list: %zu pods, %zu addresses, resourceVersion %s",
		    live, addrs, w->w_rv != NULL ? w->w_rv : "(none)");
	}
	watch_buf_reset(w);
#ifdef __GLIBC__
	/* give the parsed pages back: what stays is bounded by the pod count */
	malloc_trim(0);
#endif
	podmeta_synced(pm, w->w_ops->wo_namespaces);
	watch_watch(w);
}

/* ------------------------------------------------------------ watch */

static void
watch_event(struct watch *w, const char *line, size_t len)
{
	struct podmeta	*pm = w->w_pm;
	json_error_t	 err;
	json_t		*root, *obj;
	const char	*type, *rv, *reason;
	json_int_t	 code;

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0)
		return;
	if ((root = json_loadb(line, len, 0, &err)) == NULL) {
		log_warnx("%swatch: bad JSON at byte %d: %s",
		    w->w_ops->wo_what, err.position,
		    err.text);
		w->w_verdict = WV_FAIL;
		return;
	}
	type = json_string_value(json_object_get(root, "type"));
	obj = json_object_get(root, "object");
	if (type == NULL || !json_is_object(obj)) {
		log_warnx("%swatch: event without type or object",
		    w->w_ops->wo_what);
		pm->pm_stats.ps_bad_objects++;
		json_decref(root);
		return;
	}
	pm->pm_stats.ps_events++;
	w->w_nevents++;
	if (strcmp(type, "ERROR") == 0) {
		code = json_integer_value(json_object_get(obj, "code"));
		reason = json_string_value(json_object_get(obj, "message"));
		log_warnx("%swatch: ERROR event: code %lld: %s",
		    w->w_ops->wo_what, (long long)code,
		    reason != NULL ? reason : "");
		w->w_verdict = code == 410 ? WV_RELIST : WV_FAIL;
		json_decref(root);
		return;
	}
	if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0)
		w->w_ops->wo_add(pm, obj, "watch");
	else if (strcmp(type, "DELETED") == 0)
		w->w_ops->wo_delete(pm, obj);
	else if (strcmp(type, "BOOKMARK") != 0)
		log_debug("watch: ignoring %s event", type);
	if ((rv = render_rv(obj)) != NULL && *rv != '\0')
		watch_setstr(&w->w_rv, rv);
	json_decref(root);
}

static size_t
watch_stream_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct watch	*w = arg;
	struct buf	*b = &w->w_buf;
	size_t		 len = size * nmemb, off;
	char		*nl;
	long		 code = 0;

	curl_easy_getinfo(w->w_watch, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		watch_append(w, data, len, ERROR_BODY_MAX);
		return len;
	}
	if (watch_append(w, data, len, WATCH_LINE_MAX) == -1) {
		log_warnx("%swatch: event larger than %lu bytes",
		    w->w_ops->wo_what,
		    WATCH_LINE_MAX);
		w->w_verdict = WV_FAIL;
		return 0;
	}
	off = 0;
	while ((nl = memchr(b->b_data + w->w_scanned, '\n',
	    b->b_len - w->w_scanned)) != NULL) {
		watch_event(w, b->b_data + off,
		    (size_t)(nl - (b->b_data + off)));
		off = w->w_scanned = (size_t)(nl - b->b_data) + 1;
		if (w->w_verdict != WV_NONE)
			return 0;
	}
	buf_drop(b, off);
	w->w_scanned = b->b_len;
	return len;
}

static void
watch_watch_done(struct watch *w, CURLcode rc)
{
	long	code = 0;
	double	now = ev_now(w->w_pm->pm_loop);

	curl_easy_getinfo(w->w_watch, CURLINFO_RESPONSE_CODE, &code);
	if (w->w_verdict == WV_RELIST || (rc == CURLE_OK && code == 410)) {
		w->w_need_relist = 1;
		if (now - w->w_last_list < 1.0) {
			watch_fail(w, 0, "watch: resourceVersion expired again");
			return;
		}
		log_info("%swatch: resourceVersion expired; listing again",
		    w->w_ops->wo_what);
		watch_setstr(&w->w_continue, NULL);
		watch_list(w);
		return;
	}
	if (w->w_verdict == WV_FAIL) {
		watch_fail(w, 0, "watch: stopped on bad data");
		return;
	}
	if (rc != CURLE_OK) {
		watch_fail(w, 0, "watch: %s", curl_easy_strerror(rc));
		return;
	}
	if (code != 200) {
		watch_http_error(w, w->w_watch, code, "watch");
		return;
	}
	if (w->w_buf.b_len > 0)
		log_warnx("%swatch: %zu bytes after the last event dropped",
		    w->w_ops->wo_what,
		    w->w_buf.b_len);
	if (now - w->w_started < 1.0 && w->w_nevents == 0) {
		watch_fail(w, 0, "watch: ended at once without events");
		return;
	}
	log_debug("watch: ended after %lu events; watching again",
	    w->w_nevents);
	watch_watch(w);
}

static void
watch_check(struct watch *w)
{
	CURLMsg	*msg;
	CURL	*e;
	CURLcode rc;
	int	 left;

	while ((msg = curl_multi_info_read(w->w_multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		e = msg->easy_handle;
		rc = msg->data.result;
		curl_multi_remove_handle(w->w_multi, e);
		w->w_phase = WP_IDLE;
		if (e == w->w_list)
			watch_list_done(w, rc);
		else
			watch_watch_done(w, rc);
	}
}

static void
watch_token_cb(struct ev_loop *l, ev_timer *t, int revents)
{
	struct watch	*w = t->data;

	kube_token_reload(w->w_pm->pm_kube);
}

struct watch *
watch_start(struct podmeta *pm, int namespaces)
{
	struct watch	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		log_warn("watch");
		return NULL;
	}
	w->w_ops = namespaces ? &watch_namespaces : &watch_pods;
	w->w_pm = pm;
	if ((w->w_multi = curl_multi_init()) == NULL ||
	    (w->w_list = curl_easy_init()) == NULL ||
	    (w->w_watch = curl_easy_init()) == NULL) {
		log_warnx("cannot initialise libcurl");
		watch_stop(w);
		return NULL;
	}
	curl_multi_setopt(w->w_multi, CURLMOPT_SOCKETFUNCTION, watch_sock_cb);
	curl_multi_setopt(w->w_multi, CURLMOPT_SOCKETDATA, w);
	curl_multi_setopt(w->w_multi, CURLMOPT_TIMERFUNCTION, watch_curl_timer);
	curl_multi_setopt(w->w_multi, CURLMOPT_TIMERDATA, w);
	ev_timer_init(&w->w_curl_timer, watch_timer_cb, 0.0, 0.0);
	w->w_curl_timer.data = w;
	ev_timer_init(&w->w_retry, watch_retry_cb, 0.0, 0.0);
	w->w_retry.data = w;
	ev_timer_init(&w->w_token, watch_token_cb, TOKEN_REREAD, TOKEN_REREAD);
	w->w_token.data = w;
	ev_timer_start(pm->pm_loop, &w->w_token);
	w->w_need_relist = 1;
	watch_watch(w);
	return w;
}

void
watch_stop(struct watch *w)
{
	struct ev_loop	*loop;

	if (w == NULL)
		return;
	loop = w->w_pm->pm_loop;
	ev_timer_stop(loop, &w->w_retry);
	ev_timer_stop(loop, &w->w_token);
	ev_timer_stop(loop, &w->w_curl_timer);
	if (w->w_multi != NULL) {
		if (w->w_list != NULL)
			curl_multi_remove_handle(w->w_multi, w->w_list);
		if (w->w_watch != NULL)
			curl_multi_remove_handle(w->w_multi, w->w_watch);
	}
	curl_easy_cleanup(w->w_list);
	curl_easy_cleanup(w->w_watch);
	curl_multi_cleanup(w->w_multi);
	curl_slist_free_all(w->w_hdrs);
	buf_free(&w->w_buf);
	free(w->w_rv);
	free(w->w_continue);
	free(w);
}
