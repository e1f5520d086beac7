/* tap.h: the TAP output of the C unit tests (t/unit-*.c): ok(), is_str(), done_testing() */
#ifndef T_TAP_H
#define T_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*
 * Header-only on purpose: each unit test is one program of one file,
 * and these counters are that program's.
 */
static int	 tests, failed;

static int	 ok(int, const char *, ...)
		    __attribute__((format(printf, 2, 3), unused));

/* One test point; returns cond, so that a caller can add diagnostics. */
static int
ok(int cond, const char *fmt, ...)
{
	va_list	 ap;

	tests++;
	if (!cond)
		failed++;
	printf("%sok %d - ", cond ? "" : "not ", tests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

/* ok() for two strings (either may be NULL), showing both when they differ */
static __attribute__((unused)) int
is_str(const char *got, const char *want, const char *name)
{
	int	 res = got != NULL && want != NULL && strcmp(got, want) == 0;

	ok(res, "%s", name);
	if (!res)
		printf("#      got: %s\n# expected: %s\n",
		    got != NULL ? got : "(null)", want != NULL ? want : "(null)");
	return res;
}

/* The plan, printed last; the exit status main() returns. */
static __attribute__((unused)) int
done_testing(void)
{
	printf("1..%d\n", tests);
	return failed != 0;
}

#endif
