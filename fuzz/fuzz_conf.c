/* fuzz_conf.c: libFuzzer harness for the configuration parser (conf.c) */
/* fuzz-sources: connectd/conf.c connectd/logformat.c connectd/logrec.c connectd/acl.c connectd/helper_conf.c lib/jsonutil.c lib/buf.c lib/addr.c lib/timefmt.c lib/diag.c */
/* fuzz-libs: jansson libpcre2-8 */
/* fuzz-options: -max_len=8192 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Nothing is opened here, so there is nothing for accesslog.c to close. */
void
accesslog_close(struct conf *c)
{
	struct access_log_conf	*alc;

	TAILQ_FOREACH(alc, &c->c_access_logs, alc_entry)
		if (alc->alc_sink != NULL)
			__builtin_trap();
}

/* no worker runs here: a conf's last reference frees it at once */
int
worker_conf_dead(struct conf *c)
{
	return -1;
}

/* The value parsers on their own, for short inputs. */
static void
fuzz_values(const uint8_t *data, size_t size)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 s[128], err[ERRBUF_LEN];
	double			 t;

	if (size >= sizeof(s))
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	if (conf_parse_time(s, &t) == 0 && !(t >= 0))
		__builtin_trap();
	err[0] = '\0';
	if (conf_parse_addrport(s, &ss, &sslen, err, sizeof(err)) == -1 &&
	    err[0] == '\0')
		__builtin_trap();
}

static char *
fuzz_dump(const struct conf *c, size_t *len)
{
	FILE	*fp;
	char	*buf = NULL;

	if ((fp = open_memstream(&buf, len)) == NULL)
		__builtin_trap();
	conf_dump(c, fp);
	if (fclose(fp) != 0)
		__builtin_trap();
	return buf;
}

/* A loaded file is dumped, the dump loads, and dumps the same again. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf	*c, *c2;
	char		 err[ERRBUF_LEN], *d1, *d2;
	size_t		 l1, l2;

	fuzz_values(data, size);
	err[0] = '\0';
	if (conf_load_buffer("fuzz.conf", (const char *)data, size, &c, err,
	    sizeof(err)) == -1) {
		if (err[0] == '\0')
			__builtin_trap();	/* every failure says why */
		return 0;
	}
	d1 = fuzz_dump(c, &l1);
	if (conf_load_buffer("fuzz.conf", d1, l1, &c2, err, sizeof(err)) == -1)
		__builtin_trap();
	d2 = fuzz_dump(c2, &l2);
	if (l1 != l2 || memcmp(d1, d2, l1) != 0)
		__builtin_trap();
	free(d1);
	free(d2);
	conf_unref(c2);
	conf_ref(c);
	conf_unref(c);
	conf_unref(c);
	return 0;
}
