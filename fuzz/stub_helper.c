/* stub_helper.c: helper.c's configuration API for harnesses that run no helper */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectd.h"

/* only the names and lines, so that `acl X external NAME` can be checked */
struct helper_conf {
	char	**hc_lines;
	char	**hc_names;
	size_t	  hc_n;
};

int
helper_conf_directive(struct conf *c, int argc, char **argv, char *err,
    size_t errlen)
{
	struct helper_conf	*hc = c->c_helpers;
	char			**nl, **nn, *line;
	size_t			 len = 0;
	int			 i;

	if (argc < 3) {
		snprintf(err, errlen, "usage: external_acl_type NAME FORMAT "
		    "COMMAND");
		return -1;
	}
	if (hc == NULL && (hc = c->c_helpers = calloc(1, sizeof(*hc))) == NULL)
		goto nomem;
	for (i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if ((line = calloc(1, len)) == NULL)
		goto nomem;
	for (i = 0; i < argc; i++) {
		if (i > 0)
			strcat(line, " ");
		strcat(line, argv[i]);
	}
	if ((nl = reallocarray(hc->hc_lines, hc->hc_n + 1, sizeof(*nl))) ==
	    NULL) {
		free(line);
		goto nomem;
	}
	hc->hc_lines = nl;
	if ((nn = reallocarray(hc->hc_names, hc->hc_n + 1, sizeof(*nn))) ==
	    NULL) {
		free(line);
		goto nomem;
	}
	hc->hc_names = nn;
	if ((hc->hc_names[hc->hc_n] = strdup(argv[1])) == NULL) {
		free(line);
		goto nomem;
	}
	hc->hc_lines[hc->hc_n++] = line;
	return 0;
 nomem:
	snprintf(err, errlen, "out of memory");
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
	size_t	 i;

	if (c->c_helpers == NULL)
		return;
	for (i = 0; i < c->c_helpers->hc_n; i++)
		fprintf(fp, "%s\n", c->c_helpers->hc_lines[i]);
}

void
helper_conf_free(struct conf *c)
{
	size_t	 i;

	if (c->c_helpers == NULL)
		return;
	for (i = 0; i < c->c_helpers->hc_n; i++) {
		free(c->c_helpers->hc_lines[i]);
		free(c->c_helpers->hc_names[i]);
	}
	free(c->c_helpers->hc_lines);
	free(c->c_helpers->hc_names);
	free(c->c_helpers);
	c->c_helpers = NULL;
}

int
helper_conf_exists(const struct conf *c, const char *name)
{
	size_t	 i;

	for (i = 0; c->c_helpers != NULL && i < c->c_helpers->hc_n; i++)
		if (strcmp(c->c_helpers->hc_names[i], name) == 0)
			return 1;
	return 0;
}

/* no helper runs: every external acl is undecided, which is "no" */
int
helper_conn_answer(struct conn *c, const char *name, const char *data)
{
	return 0;
}
