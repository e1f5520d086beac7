/* timefmt.c: wall-clock time as RFC 3339 UTC with milliseconds */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "timefmt.h"

/* n as width digits at p */
static void
timefmt_digits(char *p, int n, int width)
{
	while (width-- > 0) {
		p[width] = (char)('0' + n % 10);
		n /= 10;
	}
}

/*
 * Lines come many to the second: each thread keeps the last second's
 * "YYYY-MM-DDTHH:MM:SS" and only the milliseconds change (gmtime_r and
 * snprintf were a tenth of the cost of a log line).
 */
static __thread time_t	 timefmt_sec = -1;
static __thread char	 timefmt_head[20];

size_t
timefmt_rfc3339(char *buf, size_t len, double t)
{
	struct tm	 tm;
	time_t		 sec;
	long long	 msall;
	int		 ms;

	if (len < TIMEFMT_RFC3339_LEN)
		return 0;
	if (t < 0)
		t = 0;
	/* round to the millisecond: 0.123 is stored as 0.12299999... */
	msall = llround(t * 1000.0);
	sec = (time_t)(msall / 1000);
	ms = (int)(msall % 1000);
	if (sec != timefmt_sec) {
		if (gmtime_r(&sec, &tm) == NULL || tm.tm_year + 1900 > 9999)
			return 0;
		timefmt_digits(timefmt_head, tm.tm_year + 1900, 4);
		timefmt_head[4] = '-';
		timefmt_digits(timefmt_head + 5, tm.tm_mon + 1, 2);
		timefmt_head[7] = '-';
		timefmt_digits(timefmt_head + 8, tm.tm_mday, 2);
		timefmt_head[10] = 'T';
		timefmt_digits(timefmt_head + 11, tm.tm_hour, 2);
		timefmt_head[13] = ':';
		timefmt_digits(timefmt_head + 14, tm.tm_min, 2);
		timefmt_head[16] = ':';
		timefmt_digits(timefmt_head + 17, tm.tm_sec, 2);
		timefmt_sec = sec;
	}
	memcpy(buf, timefmt_head, 19);
	buf[19] = '.';
	timefmt_digits(buf + 20, ms, 3);
	buf[23] = 'Z';
	buf[24] = '\0';
	return 24;
}

double
timefmt_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return tv.tv_sec + tv.tv_usec / 1e6;
}
