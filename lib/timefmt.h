/* timefmt.h: wall-clock time as RFC 3339 UTC with milliseconds */
#ifndef TIMEFMT_H
#define TIMEFMT_H

#include <stddef.h>

/* "2026-11-23T18:17:00.123Z" plus the NUL */
#define TIMEFMT_RFC3339_LEN	25

size_t	timefmt_rfc3339(char *, size_t, double);
double	timefmt_now(void);

#endif
