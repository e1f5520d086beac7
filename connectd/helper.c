/* helper.c: (being written) */
#include <stdio.h>

#include "connectd.h"

int
helper_conf_directive(struct conf *c, int argc, char **argv, char *err,
    size_t errlen)
{
	snprintf(err, errlen, "%s is not supported yet", argv[0]);
	return -1;
}

int
helper_conf_finish(struct conf *c, char *err, size_t errlen)
{
	return 0;
}

void
helper_conf_dump(const struct conf *c, FILE *fp)
{
}

void
helper_conf_free(struct conf *c)
{
}

void
helper_conn_start(struct conn *c)
{
}

int
helper_conn_finish(struct conn *c)
{
	return 0;
}

int
helper_conn_answer(struct conn *c, const char *name, const char *data)
{
	return 0;
}
