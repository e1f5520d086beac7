/* fuzz_admin.c: libFuzzer harness for the metrics_port request parser (admin.c) */
/* fuzz-sources: connectd/admin.c */
/* fuzz-libs: -lev */
/* fuzz-options: -max_len=8192 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connectd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* What admin.c calls beyond its parser; never reached from here. */
int
listener_bind(const struct sockaddr_storage *ss, socklen_t len)
{
	__builtin_trap();
}

int
metrics_render(struct worker *w, struct buf *b)
{
	__builtin_trap();
}

const char *
helper_unanswered(struct worker *w)
{
	__builtin_trap();
}

const char *
worker_unready(struct worker *w)
{
	__builtin_trap();
}

/* Inside buf[0..len), and not empty. */
static void
check_span(const char *buf, size_t len, const char *p, size_t n)
{
	if (p == NULL || n == 0 || p < buf || p + n > buf + len)
		__builtin_trap();
}

static int
parse(const char *buf, size_t len, size_t max, struct admin_request *aq)
{
	int	 st;
	size_t	 i;

	st = admin_parse(buf, len, max, aq);
	switch (st) {
	case 0:
		if (len >= max)
			__builtin_trap();
		break;
	case 200:
		check_span(buf, len, aq->aq_method, aq->aq_method_len);
		check_span(buf, len, aq->aq_path, aq->aq_path_len);
		if (aq->aq_path[0] != '/' ||
		    memchr(aq->aq_path, '?', aq->aq_path_len) != NULL ||
		    memchr(aq->aq_path, ' ', aq->aq_path_len) != NULL)
			__builtin_trap();
		for (i = 0; i < aq->aq_method_len; i++)
			if (aq->aq_method[i] <= ' ' || aq->aq_method[i] >= 0x7f)
				__builtin_trap();
		break;
	case 400:
	case 431:
		break;
	default:
		__builtin_trap();
	}
	return st;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct admin_request	 aq, aq2;
	char			*buf;
	size_t			 cut;
	int			 st, st2;

	/* an exact copy, so that reading past the end is caught */
	if ((buf = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	st = parse(buf, size, 4096, &aq);
	(void)parse(buf, size, 64, &aq2);
	/*
	 * A complete head decides the same whatever follows it: a prefix
	 * that decided already decides as the whole input does.
	 */
	for (cut = 0; cut < size && cut < 512; cut++) {
		st2 = parse(buf, cut, 4096, &aq2);
		if (st2 != 0 && st2 != st)
			__builtin_trap();
		if (st2 == 200 && (aq2.aq_method != aq.aq_method ||
		    aq2.aq_path_len != aq.aq_path_len))
			__builtin_trap();
	}
	free(buf);
	return 0;
}
