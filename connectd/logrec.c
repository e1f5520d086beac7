/* logrec.c: the log record of one tunnel or request: allocation and close-reason names */
#include <stdlib.h>

#include "connectd.h"

/* The names are the log line's "close" values, as connectd.conf(5) lists them. */
static const char *const close_names[] = {
	[CLOSE_NONE] = NULL,
	[CLOSE_CLIENT_EOF] = "client_eof",
	[CLOSE_SERVER_EOF] = "server_eof",
	[CLOSE_IDLE_TIMEOUT] = "idle_timeout",
	[CLOSE_CLIENT_RESET] = "client_reset",
	[CLOSE_SERVER_RESET] = "server_reset",
	[CLOSE_DNS_FAILED] = "dns_failed",
	[CLOSE_CONNECT_FAILED] = "connect_failed",
	[CLOSE_CONNECT_TIMEOUT] = "connect_timeout",
	[CLOSE_BAD_REQUEST] = "bad_request",
	[CLOSE_HEADER_TIMEOUT] = "header_timeout",
	[CLOSE_DENIED] = "denied",
	[CLOSE_LIMIT] = "limit",
	[CLOSE_LIFETIME] = "lifetime",
	[CLOSE_SHUTDOWN] = "shutdown",
	[CLOSE_DONE] = "done",
};

/* The name of a close reason; NULL for CLOSE_NONE or an unknown value. */
const char *
logrec_close_name(enum close_reason r)
{
	if ((size_t)r >= nitems(close_names))
		return NULL;
	return close_names[r];
}

/* An empty record; NULL if out of memory. */
struct logrec *
logrec_new(void)
{
	return calloc(1, sizeof(struct logrec));
}

void
logrec_free(struct logrec *rec)
{
	if (rec == NULL)
		return;
	free(rec->lr_method);
	free(rec->lr_authority);
	free(rec->lr_host);
	free(rec->lr_user_agent);
	free(rec->lr_detail);
	free(rec->lr_pod);
	free(rec->lr_rule);
	free(rec->lr_url);
	free(rec->lr_content_type);
	free(rec);
}
