/* util.h: the few macros every file of both programs may use */
#ifndef UTIL_H
#define UTIL_H

#include <stddef.h>
#include <stdint.h>

/* the number of elements of an array (not of a pointer) */
#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* the struct that holds member m at p: for intrusive lists and tables */
#define container_of(p, type, m) \
	((type *)(void *)((char *)(p) - offsetof(type, m)))

/* the value of hex digit c, or -1 */
static inline int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * v in decimal into buf, which holds UTIL_U64_LEN bytes; no NUL.  Returns
 * the number of digits.  For hot paths (log lines), where snprintf costs
 * ten times as much.
 */
#define UTIL_U64_LEN	20
static inline size_t
fmt_u64(char *buf, uint64_t v)
{
	char	 tmp[UTIL_U64_LEN];
	size_t	 n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

#endif
