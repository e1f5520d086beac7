/* buf.h: a growable byte buffer with a bound, always NUL-terminated (curl's dynbuf) */
#ifndef BUF_H
#define BUF_H

#include <stddef.h>

/*
 * b_len never exceeds b_max: an append that would pass it fails and
 * leaves the buffer as it was.  Memory is allocated on the first append
 * and doubles as needed; b_data[b_len] is always a NUL once allocated.
 * A zeroed struct buf is an empty buffer with no bound.
 */
struct buf {
	char	*b_data;
	size_t	 b_len;
	size_t	 b_cap;		/* allocated bytes, the NUL's included */
	size_t	 b_max;		/* 0: no bound */
};

#define BUF_INITIALIZER(max)	{ NULL, 0, 0, (max) }

/* An empty buffer that will hold at most max bytes (0: no bound). */
void	 buf_init(struct buf *, size_t max);

/*
 * Append len bytes.  Returns 0, or -1 (nothing appended) when out of
 * memory or when the bound would be passed.
 */
int	 buf_add(struct buf *, const void *, size_t);
int	 buf_addc(struct buf *, char);
int	 buf_addstr(struct buf *, const char *);

/*
 * Room to write into directly, e.g. with read(2): at least min(want,
 * what the bound leaves) bytes at the end of the data, their number in
 * *avail.  Returns NULL when the buffer is at its bound or out of
 * memory.  buf_commit(n) then counts n of them as data.
 */
char	*buf_space(struct buf *, size_t want, size_t *avail);
void	 buf_commit(struct buf *, size_t n);

/* Remove the first n bytes (all of them if n >= b_len). */
void	 buf_drop(struct buf *, size_t n);

/* Keep only the first n bytes (all of them if n >= b_len). */
void	 buf_truncate(struct buf *, size_t n);

/* Empty it, keeping the memory for reuse. */
void	 buf_reset(struct buf *);

/* Empty it and give the memory back; the bound stays. */
void	 buf_free(struct buf *);

/*
 * Hand the data over: a malloc'd NUL-terminated string the caller
 * frees, its length in *lenp if not NULL; the buffer is left empty with
 * no memory.  NULL if the buffer never held any data.
 */
char	*buf_take(struct buf *, size_t *lenp);

#endif
