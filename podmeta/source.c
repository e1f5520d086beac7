/* source.c: --source file:PATH, a PodList file read at start and again whenever it changes */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "podmeta.h"

struct source {
	struct podmeta	*s_pm;
	const char	*s_path;	/* borrowed from the caller */
	ev_timer	 s_timer;
	struct stat	 s_seen;	/* the version last tried */
	int		 s_tried;
	int		 s_errno;	/* last stat() failure, to log it once */
};

static int
source_same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	    a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Load the file as a complete list; on any error the index is left alone. */
static int
source_load(struct source *s)
{
	struct podmeta	*pm = s->s_pm;
	json_error_t	 err;
	json_t		*root, *items, *item;
	size_t		 i, n = 0;

	if ((root = json_load_file(s->s_path, 0, &err)) == NULL) {
		log_warnx("%s:%d: %s", s->s_path, err.line, err.text);
		return -1;
	}
	/* key on items, not kind: kubelet lists say "Pod" */
	items = json_object_get(root, "items");
	if (!json_is_array(items)) {
		log_warnx("%s: no \"items\" array", s->s_path);
		json_decref(root);
		return -1;
	}
	index_list_begin(pm->pm_index);
	json_array_foreach(items, i, item)
		if (podmeta_add_pod(pm, item, s->s_path) == 0)
			n++;
	index_list_end(pm->pm_index, ev_now(pm->pm_loop));
	json_decref(root);
#ifdef __GLIBC__
	malloc_trim(0);
#endif
	pm->pm_stats.ps_events++;
	if (pm->pm_stats.ps_lists++ > 0)
		pm->pm_stats.ps_relists++;
	log_info("%s: loaded %zu pods", s->s_path, n);
	return 0;
}

static void
source_check(struct source *s)
{
	struct stat	 st;

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
	if (source_load(s) == 0)
		podmeta_synced(s->s_pm);
}

static void
source_tick(struct ev_loop *l, ev_timer *w, int revents)
{
	source_check(w->data);
}

struct source *
source_start(struct podmeta *pm, const char *path)
{
	struct source	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("source");
		return NULL;
	}
	s->s_pm = pm;
	s->s_path = path;
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
	ev_timer_stop(s->s_pm->pm_loop, &s->s_timer);
	free(s);
}
