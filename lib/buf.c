/* buf.c: a growable byte buffer with a bound, always NUL-terminated (curl's dynbuf) */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define BUF_MIN		256

void
buf_init(struct buf *b, size_t max)
{
	b->b_data = NULL;
	b->b_len = b->b_cap = 0;
	b->b_max = max;
}

/* Make room for need bytes of data in all, plus the NUL. */
static int
buf_grow(struct buf *b, size_t need)
{
	size_t	 cap;
	char	*p;

	if (need < b->b_cap)
		return 0;
	if (need == SIZE_MAX) {
		errno = ENOMEM;
		return -1;
	}
	cap = b->b_cap > BUF_MIN ? b->b_cap : BUF_MIN;
	while (cap <= need)
		cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
	/* no use allocating beyond the bound */
	if (b->b_max != 0 && cap > b->b_max + 1)
		cap = b->b_max + 1;
	if ((p = realloc(b->b_data, cap)) == NULL)
		return -1;
	b->b_data = p;
	b->b_cap = cap;
	return 0;
}

int
buf_add(struct buf *b, const void *data, size_t len)
{
	if (len > SIZE_MAX - b->b_len - 1 ||
	    (b->b_max != 0 && b->b_len + len > b->b_max)) {
		errno = E2BIG;
		return -1;
	}
	if (buf_grow(b, b->b_len + len) == -1)
		return -1;
	if (len > 0)
		memcpy(b->b_data + b->b_len, data, len);
	b->b_len += len;
	b->b_data[b->b_len] = '\0';
	return 0;
}

int
buf_addc(struct buf *b, char c)
{
	return buf_add(b, &c, 1);
}

int
buf_addstr(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

char *
buf_space(struct buf *b, size_t want, size_t *avail)
{
	size_t	 left;

	if (b->b_max != 0) {
		left = b->b_max - b->b_len;
		if (left == 0) {
			errno = E2BIG;
			return NULL;
		}
		if (want > left)
			want = left;
	}
	if (want == 0)
		want = 1;
	if (want > SIZE_MAX - b->b_len - 1) {
		errno = ENOMEM;
		return NULL;
	}
	if (buf_grow(b, b->b_len + want) == -1)
		return NULL;
	/* all that is allocated, up to the bound, the NUL's byte kept */
	*avail = b->b_cap - 1 - b->b_len;
	if (b->b_max != 0 && *avail > b->b_max - b->b_len)
		*avail = b->b_max - b->b_len;
	return b->b_data + b->b_len;
}

void
buf_commit(struct buf *b, size_t n)
{
	b->b_len += n;
	b->b_data[b->b_len] = '\0';
}

void
buf_drop(struct buf *b, size_t n)
{
	if (n >= b->b_len) {
		buf_reset(b);
		return;
	}
	memmove(b->b_data, b->b_data + n, b->b_len - n);
	b->b_len -= n;
	b->b_data[b->b_len] = '\0';
}

void
buf_truncate(struct buf *b, size_t n)
{
	if (n >= b->b_len)
		return;
	b->b_len = n;
	b->b_data[n] = '\0';
}

void
buf_reset(struct buf *b)
{
	b->b_len = 0;
	if (b->b_data != NULL)
		b->b_data[0] = '\0';
}

void
buf_free(struct buf *b)
{
	free(b->b_data);
	b->b_data = NULL;
	b->b_len = b->b_cap = 0;
}

char *
buf_take(struct buf *b, size_t *lenp)
{
	char	*p = b->b_data;

	if (lenp != NULL)
		*lenp = b->b_len;
	b->b_data = NULL;
	b->b_len = b->b_cap = 0;
	return p;
}
