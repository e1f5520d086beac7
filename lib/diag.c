/* diag.c: diagnostics to stderr, one timestamped line per message */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "diag.h"
#include "timefmt.h"

static const char	*diag_prog = "?";
static int		 diag_verbose;

void
diag_init(const char *progname, int verbose)
{
	const char	*p;

	p = strrchr(progname, '/');
	diag_prog = p != NULL ? p + 1 : progname;
	diag_verbose = verbose;
}

static void	diag_vlog(const char *, int, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));

static void
diag_vlog(const char *level, int with_errno, const char *fmt, va_list ap)
{
	char		 ts[TIMEFMT_RFC3339_LEN], msg[2048];
	struct timeval	 tv;
	int		 saved = errno;

	gettimeofday(&tv, NULL);
	timefmt_rfc3339(ts, sizeof(ts), tv.tv_sec + tv.tv_usec / 1e6);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno)
		fprintf(stderr, "%s %s[%d]: %s: %s: %s\n", ts, diag_prog,
		    (int)getpid(), level, msg, strerror(saved));
	else
		fprintf(stderr, "%s %s[%d]: %s: %s\n", ts, diag_prog,
		    (int)getpid(), level, msg);
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vlog("warning", 1, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vlog("warning", 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vlog("info", 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!diag_verbose)
		return;
	va_start(ap, fmt);
	diag_vlog("debug", 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vlog("fatal", 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vlog("fatal", 0, fmt, ap);
	va_end(ap);
	exit(1);
}
