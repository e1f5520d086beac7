/* fuzz_logformat.c: libFuzzer harness for logformat.c: templates and the json format */
/* fuzz-sources: connectd/logformat.c connectd/logrec.c lib/jsonutil.c lib/buf.c lib/addr.c lib/timefmt.c lib/diag.c */
/* fuzz-libs: jansson */
/* fuzz-options: -max_len=4096 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "connectd.h"
#include "jsonutil.h"

/*
 * Input: one selector byte, then NUL-separated fields:
 *	template, method, authority, host, user_agent, pod, numbers
 * With num[23] odd the record has a "tls" object (peek.c's struct
 * logtls): the SNI is the user_agent field's bytes, the ALPN list (wire
 * format, unchecked) the pod field's, the rest from the numbers.
 * With num[43] & 1 it has a "policy" (issue 15) whose members are the
 * method, authority, host, user_agent and pod fields (missing: null),
 * with num[43] & 2 the on_failure= stand-in.
 * The selector picks a fixed template, or (if out of range) the
 * template field.  A missing field leaves its logrec string NULL.  Numbers
 * stay below 2^63: jansson, the checker, cannot parse larger integers.
 */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *const fuzz_templates[] = {
	"{\"ts\":\"%ts\",\"client_ip\":\"%>a\",\"authority\":\"%ru\","
	    "\"bytes_up\":\"%>st\",\"bytes_down\":\"%<st\",\"podmeta\":%'ea}",
	"%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt",
	"{\"a\":%ru,\"b\":%'ru,\"c\":%#ru,\"d\":\"%'ru\",\"e\":[%>Hs,%<p,%tS],"
	    "\"f\":%'{User-Agent}>h,\"g\":\"%-20.5rm\",\"h\":%'rm,\"i\":%[ea}",
	"A=%ru B=%'ru C=%\"ru D=%#ru E=\"%ru\" F=%ea G=%'ea H=%[ea "
	    "I=%{User-Agent}>h J=%{%n%t%Y}tl K=%010tr L=%-8.3ru|",
	"{\"sni\":\"%ssl::>sni\",\"s2\":%ssl::>sni,\"alpn\":%ssl::>alpn,"
	    "\"a2\":\"%#ssl::>alpn\",\"j\":%ssl::>ja4,\"p\":%proto,"
	    "\"v\":[%ssl::>received_hello_version,"
	    "%ssl::>received_supported_version,%ssl::<negotiated_version],"
	    "\"c\":%ssl::>negotiated_cipher,\"m\":%ssl::sni_match,"
	    "\"h\":\"%ssl::hello\"}",
	"%proto %ssl::>sni %'ssl::>sni %\"ssl::>alpn %[ssl::>alpn %ssl::>ja4 "
	    "%ssl::<negotiated_cipher %10ssl::<negotiated_version|",
};
#define FUZZ_NTEMPLATES	(sizeof(fuzz_templates) / sizeof(fuzz_templates[0]))

static char *
fuzz_field(const uint8_t **p, const uint8_t *end, int *present)
{
	const uint8_t	*nul;
	char		*s;
	size_t		 len;

	*present = *p < end;
	if (!*present)
		return NULL;
	nul = memchr(*p, '\0', (size_t)(end - *p));
	len = nul != NULL ? (size_t)(nul - *p) : (size_t)(end - *p);
	if ((s = malloc(len + 1)) == NULL)
		abort();
	memcpy(s, *p, len);
	s[len] = '\0';
	*p += len + (nul != NULL ? 1 : 0);
	return s;
}

static void
fuzz_addr(struct sockaddr_storage *ss, const uint8_t *b, size_t n)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (n < 1)
		return;
	switch (b[0] % 4) {
	case 0:
		sin->sin_family = AF_INET;
		if (n >= 7) {
			memcpy(&sin->sin_addr, b + 1, 4);
			memcpy(&sin->sin_port, b + 5, 2);
		}
		break;
	case 1:
		sin6->sin6_family = AF_INET6;
		if (n >= 19) {
			memcpy(&sin6->sin6_addr, b + 1, 16);
			memcpy(&sin6->sin6_port, b + 17, 2);
		}
		break;
	case 2:
		/* IPv4-mapped */
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr.s6_addr[10] = 0xff;
		sin6->sin6_addr.s6_addr[11] = 0xff;
		if (n >= 5)
			memcpy(&sin6->sin6_addr.s6_addr[12], b + 1, 4);
		break;
	default:
		ss->ss_family = AF_UNIX;
		break;
	}
}

/* One line: ends in the only newline, no CR, length right. */
static void
fuzz_check_line(const char *line, size_t len)
{
	if (line == NULL)
		return;		/* out of memory */
	if (len == 0 || strlen(line) != len || line[len - 1] != '\n' ||
	    memchr(line, '\n', len - 1) != NULL ||
	    memchr(line, '\r', len) != NULL)
		__builtin_trap();
}

static void
fuzz_check_json(const char *line, size_t len)
{
	json_t		*j;
	json_error_t	 jerr;

	if (line == NULL)
		return;
	if ((j = json_loadb(line, len, 0, &jerr)) == NULL)
		__builtin_trap();
	json_decref(j);
}

/* A line from logformat_render_fit(): NULL (too long even so), or fits. */
static void
fuzz_check_fit(const char *line, size_t len, size_t max, int json)
{
	json_t		*j;
	json_error_t	 jerr;

	if (line == NULL)
		return;
	fuzz_check_line(line, len);
	if (len > max)
		__builtin_trap();
	if (!json)
		return;
	if ((j = json_loadb(line, len, 0, &jerr)) == NULL ||
	    json_object_get(j, "truncated") != json_true())
		__builtin_trap();
	json_decref(j);
}

/* A timestamp BigQuery takes: 2026-11-23T18:17:00.123Z */
static int
fuzz_is_time(const json_t *v)
{
	static const char	 shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	const char		*s;
	size_t			 i;

	if (!json_is_string(v) || json_string_length(v) != sizeof(shape) - 1)
		return 0;
	s = json_string_value(v);
	for (i = 0; i < sizeof(shape) - 1; i++)
		if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != shape[i])
			return 0;
	return 1;
}

/*
 * The built-in json format, against conf/bigquery-schema.json's rules:
 * ts and start are timestamps, status and the counters integers, pod an
 * object or null, the optional fields strings when present, close null
 * exactly on interim records.
 */
static void
fuzz_check_schema(const char *line, size_t len, const struct logrec *r)
{
	static const char *const ints[] = { "duration_ms", "id", "seq",
	    "status", "bytes_up", "bytes_down", "bytes_up_delta",
	    "bytes_down_delta", "request_in_connection", "client_port" };
	static const char *const strs[] = { "uid", "record", "proxy" };
	static const char *const optstrs[] = { "detail", "pod_error", "rule",
	    "pod_raw", "method", "scheme", "authority", "url", "host",
	    "user_agent", "server_ip", "close" };
	json_t		*j, *v, *w;
	json_error_t	 jerr;
	size_t		 i;

	if (line == NULL)
		return;
	if ((j = json_loadb(line, len, 0, &jerr)) == NULL)
		__builtin_trap();
	if (!fuzz_is_time(json_object_get(j, "ts")) ||
	    !fuzz_is_time(json_object_get(j, "start")))
		__builtin_trap();
	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		if (!json_is_integer(json_object_get(j, ints[i])) &&
		    !(r->lr_client.ss_family == AF_UNIX &&
		    strcmp(ints[i], "client_port") == 0))
			__builtin_trap();
	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (!json_is_string(json_object_get(j, strs[i])))
			__builtin_trap();
	for (i = 0; i < sizeof(optstrs) / sizeof(optstrs[0]); i++)
		if ((v = json_object_get(j, optstrs[i])) != NULL &&
		    !json_is_string(v) && !json_is_null(v))
			__builtin_trap();
	v = json_object_get(j, "pod");
	if (v == NULL || !(json_is_object(v) || json_is_null(v)))
		__builtin_trap();
	/* a helper value that is no object: pod_raw and pod_error say so */
	if (json_is_null(v) && r->lr_pod != NULL &&
	    (!json_is_string(json_object_get(j, "pod_raw")) ||
	    !json_is_string(json_object_get(j, "pod_error"))))
		__builtin_trap();
	if (json_is_string(json_object_get(j, "pod_raw")) &&
	    json_string_length(json_object_get(j, "pod_raw")) >
	    LOGREC_POD_RAW_MAX * 3)
		__builtin_trap();
	if (json_is_null(json_object_get(j, "close")) != (r->lr_interim != 0))
		__builtin_trap();
	/* policy null, or exactly its five members, each a string or null */
	v = json_object_get(j, "policy");
	if (v == NULL || !(json_is_object(v) || json_is_null(v)) ||
	    json_is_null(v) != (r->lr_policy == NULL &&
	    r->lr_policy_fail == NULL))
		__builtin_trap();
	if (json_is_object(v)) {
		if (json_object_size(v) != LP_NMEMBERS)
			__builtin_trap();
		for (i = 0; i < LP_NMEMBERS; i++) {
			w = json_object_get(v, logpolicy_name(i));
			if (w == NULL || !(json_is_string(w) ||
			    json_is_null(w)) || (json_is_string(w) &&
			    json_string_length(w) > LOGPOLICY_VALUE_MAX * 3))
				__builtin_trap();
		}
	}
	/* proto a string or null; tls an object or null, its lists arrays */
	v = json_object_get(j, "proto");
	if (v == NULL || !(json_is_string(v) || json_is_null(v)))
		__builtin_trap();
	v = json_object_get(j, "tls");
	if (v == NULL || !(json_is_object(v) || json_is_null(v)))
		__builtin_trap();
	if (json_is_object(v) &&
	    (!json_is_array(json_object_get(v, "alpn")) ||
	    !json_is_array(json_object_get(v, "versions")) ||
	    !json_is_string(json_object_get(v, "hello")) ||
	    !json_is_boolean(json_object_get(v, "ech")) ||
	    !json_is_integer(json_object_get(v, "hello_bytes"))))
		__builtin_trap();
	json_decref(j);
}

/* A "tls" object as peek.c would make it, from the fields and numbers. */
static void
fuzz_tls(struct logrec *r, const uint8_t *num)
{
	struct logtls	*t;
	const char	*sni = r->lr_user_agent != NULL ? r->lr_user_agent : "";
	const char	*alpn = r->lr_pod != NULL ? r->lr_pod : "";
	size_t		 sl = strlen(sni), al = strlen(alpn), i;

	r->lr_proto = num[24] % 6;
	if (!(num[23] & 1))
		return;
	if (sl > TLSHELLO_SNI_MAX)
		sl = TLSHELLO_SNI_MAX;
	if (al > TLSHELLO_ALPN_MAX)
		al = TLSHELLO_ALPN_MAX;
	if ((t = calloc(1, sizeof(*t) + sl + al)) == NULL)
		abort();
	t->lt_hello = num[25] % PEEK_NHELLO;
	t->lt_match = num[26] % PEEK_NMATCH;
	t->lt_ech = num[23] & 2;
	t->lt_pq = num[23] & 4;
	t->lt_has_sni = (num[23] & 8) != 0;
	t->lt_server = (num[23] & 16) != 0;
	t->lt_hrr = (num[23] & 64) != 0;
	t->lt_legacy = (uint16_t)(num[27] << 8 | num[28]);
	t->lt_nversions = num[29] % (TLSHELLO_VERSIONS_MAX + 1);
	for (i = 0; i < t->lt_nversions; i++)
		t->lt_versions[i] = (uint16_t)(0x0300 + num[30 + i % 8]);
	t->lt_version = (uint16_t)(num[38] << 8 | num[39]);
	t->lt_cipher = (uint16_t)(num[40] << 8 | num[41]);
	t->lt_hello_bytes = (uint32_t)num[42] << 8;
	if (num[23] & 32)
		memcpy(t->lt_ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1",
		    TLSHELLO_JA4_LEN);
	t->lt_sni_len = (uint16_t)sl;
	t->lt_alpn_len = (uint16_t)al;
	memcpy(t->lt_data, sni, sl);
	memcpy(t->lt_data + sl, alpn, al);
	r->lr_tls = t;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t		*p, *end = data + size;
	const struct logformat	*json;
	struct logformat	*lf = NULL;
	struct logrec		*r;
	const char		*tpl, *t;
	char			*field, *line, err[256];
	size_t			 len, n, max;
	int			 present, jsonmode;
	uint8_t			 num[64];

	if (size < 1)
		return 0;
	p = data + 1;
	field = fuzz_field(&p, end, &present);
	tpl = data[0] < FUZZ_NTEMPLATES ? fuzz_templates[data[0]] :
	    field != NULL ? field : "";

	if ((r = logrec_new()) == NULL)
		abort();
	r->lr_method = fuzz_field(&p, end, &present);
	r->lr_authority = fuzz_field(&p, end, &present);
	r->lr_host = fuzz_field(&p, end, &present);
	r->lr_user_agent = fuzz_field(&p, end, &present);
	r->lr_pod = fuzz_field(&p, end, &present);
	/* as the helper cache decides it when the answer arrives */
	r->lr_pod_json = r->lr_pod != NULL && json_oneline(r->lr_pod,
	    strlen(r->lr_pod), 32);
	memset(num, 0, sizeof(num));
	n = (size_t)(end - p) < sizeof(num) ? (size_t)(end - p) : sizeof(num);
	memcpy(num, p, n);

	r->lr_id = (uint64_t)num[0] << 48 | num[1];
	r->lr_start = 1.7e9 + num[2] * 1000.0 + num[3] / 256.0;
	r->lr_end = num[4] & 1 ? r->lr_start - num[5] : r->lr_start +
	    num[5] * 37.3 + num[6] / 7.0;
	fuzz_addr(&r->lr_client, num + 7, 19);
	fuzz_addr(&r->lr_local, num + 26, 19);
	fuzz_addr(&r->lr_server, num + 45, 19);
	r->lr_has_server = num[8] & 1;
	r->lr_port = (int)(num[9] << 8 | num[10]) - 100;
	r->lr_status = num[11] % 5 == 0 ? 0 : (int)num[11] * 3 - 100;
	r->lr_bytes_up = (uint64_t)num[12] << 40 | num[13];
	r->lr_bytes_down = num[14] == 255 ? UINT64_C(1) << 62 : num[14];
	r->lr_head_in = num[15];
	r->lr_reply_out = num[16];
	r->lr_close = (enum close_reason)(num[17] >> 4);
	r->lr_pod_error = num[17] & 2 ? "timeout" : num[17] & 1 ? "err" : NULL;
	r->lr_interim = num[18] & 1;
	r->lr_seq = num[19];
	r->lr_up_logged = (uint64_t)num[20] << 40 | num[21];
	r->lr_down_logged = num[22];
	r->lr_proxy = num[18] & 2 ? "proxy-1" : NULL;
	r->lr_instance = num[18] & 4 ? "0123456789abcdef" : NULL;
	if (r->lr_close == CLOSE_NONE && !r->lr_interim)
		r->lr_close = CLOSE_DONE;	/* a final line always has one */
	if (num[17] & 4 && (r->lr_detail = strdup(r->lr_host != NULL ?
	    r->lr_host : "x")) == NULL)
		abort();
	if (num[17] & 8 && (r->lr_rule = strdup(r->lr_method != NULL ?
	    r->lr_method : "")) == NULL)
		abort();

	fuzz_tls(r, num);
	if (num[43] & 1) {
		const char	*pv[LP_NMEMBERS] = { r->lr_method,
		    r->lr_authority, r->lr_host, r->lr_user_agent, r->lr_pod };
		size_t		 pl[LP_NMEMBERS];
		struct logrec	*d;

		for (n = 0; n < LP_NMEMBERS; n++)
			pl[n] = pv[n] != NULL ? strlen(pv[n]) : 0;
		if ((r->lr_policy = logpolicy_new(pv, pl)) == NULL)
			abort();
		for (n = 0; n < LP_NMEMBERS; n++)
			if (pv[n] == NULL ? logpolicy_get(r->lr_policy, n) !=
			    NULL : strncmp(logpolicy_get(r->lr_policy, n),
			    pv[n], LOGPOLICY_VALUE_MAX - 3) != 0)
				__builtin_trap();
		/* an interim record's copy has the same */
		if ((d = logrec_dup(r)) == NULL)
			abort();
		if (d->lr_policy == r->lr_policy ||
		    d->lr_policy->lp_size != r->lr_policy->lp_size ||
		    memcmp(d->lr_policy, r->lr_policy,
		    r->lr_policy->lp_size) != 0)
			__builtin_trap();
		logrec_free(d);
	}
	if (num[43] & 2) {
		r->lr_policy_fail = num[43] & 4 ? "fail_open" : "fail_closed";
		r->lr_policy_why = num[43] & 8 ? "timeout" : "bh";
	}

	/* the built-in json format: always one valid JSON line */
	if ((json = logformat_builtin("json")) == NULL)
		__builtin_trap();
	line = logformat_render(json, r, &len);
	fuzz_check_line(line, len);
	fuzz_check_json(line, len);
	fuzz_check_schema(line, len, r);
	free(line);

	/* any template: compiles or fails cleanly */
	if ((lf = logformat_compile("fuzz", tpl, err, sizeof(err))) != NULL) {
		if (strcmp(logformat_name(lf), "fuzz") != 0)
			__builtin_trap();
		for (t = tpl; *t == ' ' || *t == '\t'; t++)
			;
		jsonmode = *t == '{';
		line = logformat_render(lf, r, &len);
		fuzz_check_line(line, len);
		if (jsonmode)
			fuzz_check_json(line, len);
		free(line);
		logformat_free(lf);
	} else if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
		__builtin_trap();

	line = logformat_render(logformat_builtin("squid"), r, &len);
	fuzz_check_line(line, len);
	free(line);

	/* shortened for a datagram: still one line, within max; JSON marked */
	max = 64 + (size_t)num[18] * 8;
	line = logformat_render_fit(json, r, max, &len);
	fuzz_check_fit(line, len, max, 1);
	free(line);
	line = logformat_render_fit(logformat_builtin("squid"), r, max, &len);
	fuzz_check_fit(line, len, max, 0);
	free(line);
	if ((lf = logformat_compile("fuzz", tpl, NULL, 0)) != NULL) {
		for (t = tpl; *t == ' ' || *t == '\t'; t++)
			;
		line = logformat_render_fit(lf, r, max, &len);
		fuzz_check_fit(line, len, max, *t == '{');
		free(line);
		logformat_free(lf);
	}

	free(field);
	logrec_free(r);
	return 0;
}
