/* util.h: the few macros every file of both programs may use */
#ifndef UTIL_H
#define UTIL_H

#include <stddef.h>

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

#endif
