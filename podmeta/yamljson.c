/* yamljson.c: one YAML document (a kubeconfig) to the jansson tree it means, with libyaml */
#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "podmeta.h"

#define YJ_DEPTH_MAX	64		/* kubeconfigs nest about 6 deep */

#define YAML_TAG_STR	"tag:yaml.org,2002:str"
#define YAML_TAG_SEQ	"tag:yaml.org,2002:seq"
#define YAML_TAG_MAP	"tag:yaml.org,2002:map"

/* An open mapping or sequence. */
struct yj_frame {
	json_t		*f_node;
	char		*f_key;		/* a mapping's key awaiting its value */
	yaml_mark_t	 f_keymark;
	size_t		 f_pathlen;	/* of yj_path up to this node */
};

struct yj {
	const char	*yj_buf;
	size_t		 yj_len;
	json_error_t	*yj_err;
	json_t		*yj_root;
	json_t		*yj_marks;	/* NULL: not wanted */
	struct buf	 yj_path;	/* JSON Pointer of the current node */
	struct yj_frame	 yj_stack[YJ_DEPTH_MAX];
	size_t		 yj_depth;
	int		 yj_docs;
};

static void	yj_error(struct yj *, const yaml_mark_t *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* Fill err: what went wrong and where (mark NULL: line 1, column 1). */
static void
yj_error(struct yj *yj, const yaml_mark_t *mark, const char *fmt, ...)
{
	json_error_t	*err = yj->yj_err;
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	snprintf(err->source, sizeof(err->source), "<yaml>");
	err->line = mark != NULL ? (int)mark->line + 1 : 1;
	err->column = mark != NULL ? (int)mark->column + 1 : 1;
	err->position = mark != NULL ? (int)mark->index : 0;
}

/* libyaml's own error; reader errors have an offset instead of a mark. */
static void
yj_parser_error(struct yj *yj, const yaml_parser_t *p)
{
	yaml_mark_t	 m;
	size_t		 i;
	const char	*problem = p->problem != NULL ? p->problem : "error";

	if (p->error == YAML_MEMORY_ERROR) {
		yj_error(yj, NULL, "out of memory");
		return;
	}
	if (p->error == YAML_READER_ERROR) {
		memset(&m, 0, sizeof(m));
		for (i = 0; i < p->problem_offset && i < yj->yj_len; i++) {
			if (yj->yj_buf[i] == '\n') {
				m.line++;
				m.column = 0;
			} else if (((unsigned char)yj->yj_buf[i] & 0xc0) != 0x80)
				m.column++;
		}
		m.index = p->problem_offset;
		if (p->problem_value != -1)
			yj_error(yj, &m, "%s (0x%X)", problem,
			    (unsigned int)p->problem_value);
		else
			yj_error(yj, &m, "%s", problem);
		return;
	}
	if (p->context != NULL)
		yj_error(yj, &p->problem_mark, "%s (%s at line %zu, column "
		    "%zu)", problem, p->context, p->context_mark.line + 1,
		    p->context_mark.column + 1);
	else
		yj_error(yj, &p->problem_mark, "%s", problem);
}

/* Extend the path by one reference token (RFC 6901: ~ is ~0, / is ~1). */
static int
yj_path_push(struct yj *yj, const char *tok)
{
	if (yj->yj_marks == NULL)
		return 0;
	if (buf_addc(&yj->yj_path, '/') == -1)
		return -1;
	for (; *tok != '\0'; tok++) {
		if ((*tok == '~' && buf_addstr(&yj->yj_path, "~0") == -1) ||
		    (*tok == '/' && buf_addstr(&yj->yj_path, "~1") == -1) ||
		    (*tok != '~' && *tok != '/' &&
		    buf_addc(&yj->yj_path, *tok) == -1))
			return -1;
	}
	return 0;
}

/* Remember where the node at the current path is. */
static int
yj_mark(struct yj *yj, const yaml_mark_t *m)
{
	json_t	*pos;

	if (yj->yj_marks == NULL)
		return 0;
	if ((pos = json_pack("[ii]", (int)m->line + 1,
	    (int)m->column + 1)) == NULL)
		return -1;
	return json_object_set_new(yj->yj_marks,
	    yj->yj_path.b_data != NULL ? yj->yj_path.b_data : "", pos);
}

/*
 * Attach a new node v (owned) where the document is: the root, an item
 * of the open sequence, or the value of the open mapping's pending key.
 * Its path is left on yj_path for a container to extend.
 */
static int
yj_attach(struct yj *yj, json_t *v, const yaml_mark_t *start)
{
	struct yj_frame	*f;
	char		 idx[32];
	const yaml_mark_t *where = start;
	int		 rc;

	if (yj->yj_depth == 0) {
		yj->yj_root = v;
		buf_reset(&yj->yj_path);
		return yj_mark(yj, where);
	}
	f = &yj->yj_stack[yj->yj_depth - 1];
	buf_truncate(&yj->yj_path, f->f_pathlen);
	if (json_is_array(f->f_node)) {
		snprintf(idx, sizeof(idx), "%zu", json_array_size(f->f_node));
		rc = json_array_append_new(f->f_node, v);
		if (rc == 0)
			rc = yj_path_push(yj, idx);
	} else {
		/* a member: point at its key, where the line begins */
		where = &f->f_keymark;
		rc = json_object_set_new(f->f_node, f->f_key, v);
		if (rc == 0)
			rc = yj_path_push(yj, f->f_key);
		free(f->f_key);
		f->f_key = NULL;
	}
	if (rc == -1 || yj_mark(yj, where) == -1) {
		yj_error(yj, start, "out of memory");
		return -1;
	}
	return 0;
}

/* The open mapping wants a key, not a value. */
static int
yj_wants_key(const struct yj *yj)
{
	const struct yj_frame	*f;

	if (yj->yj_depth == 0)
		return 0;
	f = &yj->yj_stack[yj->yj_depth - 1];
	return json_is_object(f->f_node) && f->f_key == NULL;
}

static int
yj_strcase3(const char *s, const char *lower, const char *title,
    const char *upper)
{
	return strcmp(s, lower) == 0 || strcmp(s, title) == 0 ||
	    strcmp(s, upper) == 0;
}

static int
yj_scalar(struct yj *yj, const yaml_event_t *ev)
{
	const char	*s = (const char *)ev->data.scalar.value;
	const char	*tag = (const char *)ev->data.scalar.tag;
	size_t		 len = ev->data.scalar.length;
	struct yj_frame	*f;
	json_t		*v;

	if (memchr(s, '\0', len) != NULL) {
		yj_error(yj, &ev->start_mark, "a NUL character in a scalar");
		return -1;
	}
	if (tag != NULL && strcmp(tag, "!") != 0 &&
	    strcmp(tag, YAML_TAG_STR) != 0) {
		yj_error(yj, &ev->start_mark, "tag %s is not supported", tag);
		return -1;
	}
	if (yj_wants_key(yj)) {
		f = &yj->yj_stack[yj->yj_depth - 1];
		if (json_object_get(f->f_node, s) != NULL) {
			yj_error(yj, &ev->start_mark, "duplicate key \"%s\"",
			    s);
			return -1;
		}
		if ((f->f_key = strdup(s)) == NULL) {
			yj_error(yj, &ev->start_mark, "out of memory");
			return -1;
		}
		f->f_keymark = ev->start_mark;
		return 0;
	}
	if (tag != NULL || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		v = json_stringn(s, len);
	else if (len == 0 || strcmp(s, "~") == 0 ||
	    yj_strcase3(s, "null", "Null", "NULL"))
		v = json_null();
	else if (yj_strcase3(s, "true", "True", "TRUE"))
		v = json_true();
	else if (yj_strcase3(s, "false", "False", "FALSE"))
		v = json_false();
	else
		v = json_stringn(s, len);	/* numbers too: see podmeta.h */
	if (v == NULL) {
		yj_error(yj, &ev->start_mark, "out of memory");
		return -1;
	}
	return yj_attach(yj, v, &ev->start_mark);
}

static int
yj_open(struct yj *yj, const yaml_event_t *ev, int map)
{
	const char	*tag;
	json_t		*v;
	struct yj_frame	*f;

	tag = (const char *)(map ? ev->data.mapping_start.tag :
	    ev->data.sequence_start.tag);
	if (yj_wants_key(yj)) {
		yj_error(yj, &ev->start_mark, "a %s as a mapping key is not "
		    "supported", map ? "mapping" : "sequence");
		return -1;
	}
	if (tag != NULL && strcmp(tag, "!") != 0 &&
	    strcmp(tag, map ? YAML_TAG_MAP : YAML_TAG_SEQ) != 0) {
		yj_error(yj, &ev->start_mark, "tag %s is not supported", tag);
		return -1;
	}
	if (yj->yj_depth == YJ_DEPTH_MAX) {
		yj_error(yj, &ev->start_mark, "nested deeper than %d levels",
		    YJ_DEPTH_MAX);
		return -1;
	}
	if ((v = map ? json_object() : json_array()) == NULL) {
		yj_error(yj, &ev->start_mark, "out of memory");
		return -1;
	}
	if (yj_attach(yj, v, &ev->start_mark) == -1)
		return -1;
	f = &yj->yj_stack[yj->yj_depth++];
	f->f_node = v;		/* borrowed: its parent (or yj_root) owns it */
	f->f_key = NULL;
	f->f_pathlen = yj->yj_path.b_len;
	return 0;
}

/* One event; 1 at the end of the stream, 0 to go on, -1 on error. */
static int
yj_event(struct yj *yj, const yaml_event_t *ev)
{
	const yaml_char_t	*anchor = NULL;

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		break;
	default:
		break;
	}
	if (anchor != NULL) {
		yj_error(yj, &ev->start_mark, "anchors (&%s) are not "
		    "supported", (const char *)anchor);
		return -1;
	}
	switch (ev->type) {
	case YAML_STREAM_START_EVENT:
	case YAML_DOCUMENT_END_EVENT:
	case YAML_NO_EVENT:
		return 0;
	case YAML_STREAM_END_EVENT:
		return 1;
	case YAML_DOCUMENT_START_EVENT:
		if (yj->yj_docs++ > 0) {
			yj_error(yj, &ev->start_mark, "a second document is "
			    "not supported");
			return -1;
		}
		return 0;
	case YAML_ALIAS_EVENT:
		yj_error(yj, &ev->start_mark, "aliases (*%s) are not "
		    "supported", (const char *)ev->data.alias.anchor);
		return -1;
	case YAML_SCALAR_EVENT:
		return yj_scalar(yj, ev);
	case YAML_SEQUENCE_START_EVENT:
		return yj_open(yj, ev, 0);
	case YAML_MAPPING_START_EVENT:
		return yj_open(yj, ev, 1);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		/* libyaml sends these balanced, and never after a key */
		if (yj->yj_depth > 0) {
			yj->yj_depth--;
			free(yj->yj_stack[yj->yj_depth].f_key);
			yj->yj_stack[yj->yj_depth].f_key = NULL;
		}
		return 0;
	}
	return 0;
}

json_t *
yamljson_load(const char *buf, size_t len, json_t **marks, json_error_t *err)
{
	yaml_parser_t	 parser;
	yaml_event_t	 ev;
	struct yj	 yj;
	int		 rc = 0;
	size_t		 i;

	memset(&yj, 0, sizeof(yj));
	memset(err, 0, sizeof(*err));
	yj.yj_buf = buf;
	yj.yj_len = len;
	yj.yj_err = err;
	buf_init(&yj.yj_path, 0);
	if (marks != NULL) {
		*marks = NULL;
		if ((yj.yj_marks = json_object()) == NULL) {
			yj_error(&yj, NULL, "out of memory");
			return NULL;
		}
	}
	if (!yaml_parser_initialize(&parser)) {
		yj_error(&yj, NULL, "out of memory");
		json_decref(yj.yj_marks);
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf,
	    len);
	while (rc == 0) {
		if (!yaml_parser_parse(&parser, &ev)) {
			yj_parser_error(&yj, &parser);
			rc = -1;
			break;
		}
		rc = yj_event(&yj, &ev);
		if (rc == 1 && yj.yj_root == NULL) {
			yj_error(&yj, NULL, "no YAML document: the file is "
			    "empty or only comments");
			rc = -1;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	for (i = 0; i < yj.yj_depth; i++)
		free(yj.yj_stack[i].f_key);
	buf_free(&yj.yj_path);
	if (rc == -1) {
		json_decref(yj.yj_root);
		json_decref(yj.yj_marks);
		return NULL;
	}
	if (marks != NULL)
		*marks = yj.yj_marks;
	return yj.yj_root;
}
