/* timefmt.c: wall-clock time as RFC 3339 UTC with milliseconds */
#include <math.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "timefmt.h"

size_t
timefmt_rfc3339(char *buf, size_t len, double t)
{
	struct tm	 tm;
	time_t		 sec;
	long		 ms;
	long long	 msall;
	int		 n;

	if (t < 0)
		t = 0;
	/* round to the millisecond: 0.123 is stored as 0.12299999... */
	msall = llround(t * 1000.0);
	sec = (time_t)(msall / 1000);
	ms = (long)(msall % 1000);
	if (gmtime_r(&sec, &tm) == NULL)
		return 0;
	n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
	if (n < 0 || (size_t)n >= len)
		return 0;
	return (size_t)n;
}

double
timefmt_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return tv.tv_sec + tv.tv_usec / 1e6;
}
