/* source.c: --source file:PATH, a PodList file read at start and again whenever it changes */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>

#include "podmeta.h"

static ev_timer		 source_timer;
static const char	*source_path;
static struct stat	 source_seen;	/* the version last tried */
static int		 source_tried;
static int		 source_errno;	/* last stat() failure, to log it once */

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
source_load(void)
{
	json_error_t	 err;
	json_t		*root, *items, *item;
	struct pod	*p;
	size_t		 i, n = 0;

	if ((root = json_load_file(source_path, 0, &err)) == NULL) {
		log_warnx("%s:%d: %s", source_path, err.line, err.text);
		return -1;
	}
	/* key on items, not kind: kubelet lists say "Pod" */
	items = json_object_get(root, "items");
	if (!json_is_array(items)) {
		log_warnx("%s: no \"items\" array", source_path);
		json_decref(root);
		return -1;
	}
	index_list_begin();
	json_array_foreach(items, i, item) {
		if ((p = render_pod(item)) == NULL) {
			stats.ps_bad_objects++;
			continue;
		}
		if (index_upsert(p) == -1)
			log_warnx("%s: out of memory", source_path);
		n++;
	}
	index_list_end();
	json_decref(root);
#ifdef __GLIBC__
	malloc_trim(0);
#endif
	stats.ps_events++;
	if (stats.ps_lists++ > 0)
		stats.ps_relists++;
	log_info("%s: loaded %zu pods", source_path, n);
	return 0;
}

static void
source_check(void)
{
	struct stat	 st;

	if (stat(source_path, &st) == -1) {
		if (errno != source_errno)
			log_warn("%s", source_path);
		source_errno = errno;
		memset(&source_seen, 0, sizeof(source_seen));
		source_tried = 1;
		return;
	}
	source_errno = 0;
	if (source_tried && source_same(&st, &source_seen))
		return;
	source_seen = st;
	source_tried = 1;
	if (source_load() == 0)
		podmeta_synced();
}

static void
source_tick(struct ev_loop *l, ev_timer *w, int revents)
{
	source_check();
}

int
source_start(const char *path)
{
	source_path = path;
	source_check();
	ev_timer_init(&source_timer, source_tick, 1.0, 1.0);
	ev_timer_start(loop, &source_timer);
	return 0;
}

void
source_stop(void)
{
	ev_timer_stop(loop, &source_timer);
}
