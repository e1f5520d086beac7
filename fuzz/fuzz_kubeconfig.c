/* fuzz_kubeconfig.c: libFuzzer harness for podmeta's kubeconfig reader: YAML to a jansson tree (yamljson.c) */
/* fuzz-sources: podmeta/yamljson.c lib/buf.c */
/* fuzz-libs: jansson yaml-0.1 */
/* fuzz-options: -max_len=20000 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "podmeta.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(x)	do { if (!(x)) { fprintf(stderr, "%s:%d: %s\n", \
			    __FILE__, __LINE__, #x); abort(); } } while (0)

/*
 * Every node of the tree, at JSON Pointer ptr, has a [line, column] in
 * marks, both at least 1.  Returns the number of nodes.
 */
static size_t
fuzz_marks(json_t *v, struct buf *ptr, json_t *marks)
{
	json_t		*pos, *item;
	const char	*key, *k;
	size_t		 i, n = 1, len = ptr->b_len;
	char		 idx[32];

	pos = json_object_get(marks, ptr->b_data != NULL ? ptr->b_data : "");
	CHECK(json_is_array(pos) && json_array_size(pos) == 2);
	CHECK(json_integer_value(json_array_get(pos, 0)) >= 1);
	CHECK(json_integer_value(json_array_get(pos, 1)) >= 1);
	if (json_is_array(v)) {
		json_array_foreach(v, i, item) {
			snprintf(idx, sizeof(idx), "/%zu", i);
			CHECK(buf_addstr(ptr, idx) == 0);
			n += fuzz_marks(item, ptr, marks);
			buf_truncate(ptr, len);
		}
	} else if (json_is_object(v)) {
		json_object_foreach(v, key, item) {
			CHECK(buf_addc(ptr, '/') == 0);
			for (k = key; *k != '\0'; k++)
				CHECK(buf_addstr(ptr, *k == '~' ? "~0" :
				    *k == '/' ? "~1" : (char[]){ *k, '\0' }) == 0);
			n += fuzz_marks(item, ptr, marks);
			buf_truncate(ptr, len);
		}
	}
	return n;
}

static int
fuzz_write(void *data, unsigned char *s, size_t len)
{
	return buf_add(data, s, len) == 0;
}

static void
fuzz_scalar(yaml_emitter_t *em, const char *s, size_t len, int plain)
{
	yaml_event_t	 ev;

	CHECK(yaml_scalar_event_initialize(&ev, NULL, NULL,
	    (yaml_char_t *)(uintptr_t)s, (int)len, plain, !plain,
	    plain ? YAML_PLAIN_SCALAR_STYLE :
	    YAML_DOUBLE_QUOTED_SCALAR_STYLE));
	CHECK(yaml_emitter_emit(em, &ev));
}

/* Emit v as YAML: strings double-quoted, so they stay strings. */
static void
fuzz_emit(yaml_emitter_t *em, json_t *v, int flow)
{
	yaml_event_t	 ev;
	json_t		*item;
	const char	*key;
	size_t		 i;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		CHECK(yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
		    flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE));
		CHECK(yaml_emitter_emit(em, &ev));
		json_object_foreach(v, key, item) {
			fuzz_scalar(em, key, strlen(key), 0);
			fuzz_emit(em, item, flow);
		}
		CHECK(yaml_mapping_end_event_initialize(&ev));
		CHECK(yaml_emitter_emit(em, &ev));
		break;
	case JSON_ARRAY:
		CHECK(yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
		    flow ? YAML_FLOW_SEQUENCE_STYLE :
		    YAML_BLOCK_SEQUENCE_STYLE));
		CHECK(yaml_emitter_emit(em, &ev));
		json_array_foreach(v, i, item)
			fuzz_emit(em, item, flow);
		CHECK(yaml_sequence_end_event_initialize(&ev));
		CHECK(yaml_emitter_emit(em, &ev));
		break;
	case JSON_STRING:
		fuzz_scalar(em, json_string_value(v), json_string_length(v), 0);
		break;
	case JSON_TRUE:
		fuzz_scalar(em, "true", 4, 1);
		break;
	case JSON_FALSE:
		fuzz_scalar(em, "false", 5, 1);
		break;
	case JSON_NULL:
		fuzz_scalar(em, "null", 4, 1);
		break;
	default:
		CHECK(!"numbers are strings");
	}
}

/* The tree as a YAML document, written by libyaml's emitter. */
static void
fuzz_dump(json_t *root, int flow, struct buf *out)
{
	yaml_emitter_t	 em;
	yaml_event_t	 ev;

	CHECK(yaml_emitter_initialize(&em));
	yaml_emitter_set_output(&em, fuzz_write, out);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	CHECK(yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
	CHECK(yaml_emitter_emit(&em, &ev));
	CHECK(yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
	CHECK(yaml_emitter_emit(&em, &ev));
	fuzz_emit(&em, root, flow);
	CHECK(yaml_document_end_event_initialize(&ev, 1));
	CHECK(yaml_emitter_emit(&em, &ev));
	CHECK(yaml_stream_end_event_initialize(&ev));
	CHECK(yaml_emitter_emit(&em, &ev));
	yaml_emitter_delete(&em);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	json_error_t	 err, err2;
	json_t		*root, *marks, *again, *bare;
	struct buf	 ptr = BUF_INITIALIZER(0), out = BUF_INITIALIZER(0);
	int		 flow;

	root = yamljson_load((const char *)data, len, &marks, &err);
	bare = yamljson_load((const char *)data, len, NULL, &err2);
	/* marks or not, the same answer */
	CHECK((root == NULL) == (bare == NULL));
	if (root == NULL) {
		CHECK(marks == NULL);
		CHECK(err.text[0] != '\0' && err.line >= 1 && err.column >= 1);
		CHECK(strcmp(err.text, err2.text) == 0 &&
		    err.line == err2.line && err.column == err2.column);
		return 0;
	}
	CHECK(json_equal(root, bare));
	/* one mark per node, no more */
	CHECK(fuzz_marks(root, &ptr, marks) == json_object_size(marks));

	/* what the tree says, written out by libyaml, reads back the same */
	for (flow = 0; flow <= 1; flow++) {
		buf_reset(&out);
		fuzz_dump(root, flow, &out);
		again = yamljson_load(out.b_data, out.b_len, NULL, &err2);
		if (again == NULL)
			fprintf(stderr, "%d:%d: %s\n%s\n", err2.line,
			    err2.column, err2.text, out.b_data);
		CHECK(again != NULL && json_equal(root, again));
		json_decref(again);
	}
	buf_free(&ptr);
	buf_free(&out);
	json_decref(root);
	json_decref(bare);
	json_decref(marks);
	return 0;
}
