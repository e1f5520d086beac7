/* fuzz_helper_reply.c: libFuzzer harness for Squid helper reply parsing, quoting and podmeta request lines */
/* fuzz-sources: lib/helperproto.c lib/addr.c lib/buf.c podmeta/proto.c */
/* fuzz-libs: jansson */
/* fuzz-options: -max_len=70000 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helperproto.h"
#include "podmeta.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(x)	do { if (!(x)) { fprintf(stderr, "%s:%d: %s\n", \
			    __FILE__, __LINE__, #x); abort(); } } while (0)

/* An exact-size writable copy with room for the terminating NUL only. */
static char *
fuzz_copy(const uint8_t *data, size_t len)
{
	char	*buf;

	if ((buf = malloc(len + 1)) == NULL)
		abort();
	memcpy(buf, data, len);
	buf[len] = '\0';
	return buf;
}

static int
fuzz_inside(const char *buf, size_t len, const char *p, size_t n)
{
	return p >= buf && p <= buf + len && n <= (size_t)(buf + len - p);
}

static void
fuzz_reply(const uint8_t *data, size_t len)
{
	struct helper_reply	 rp;
	char			*buf = fuzz_copy(data, len);
	size_t			 i;

	if (helper_reply_parse(buf, len, &rp) == 0) {
		CHECK(rp.rp_nkv <= HELPER_KV_MAX);
		if (rp.rp_id != NULL) {
			CHECK(fuzz_inside(buf, len, rp.rp_id, rp.rp_idlen));
			/* the ID's value, or ULLONG_MAX: never wrapped */
			errno = 0;
			CHECK(rp.rp_idnum == strtoull(rp.rp_id, NULL, 10) ||
			    (errno == ERANGE && rp.rp_idnum == ULLONG_MAX));
		}
		for (i = 0; i < rp.rp_nkv; i++) {
			CHECK(fuzz_inside(buf, len, rp.rp_kv[i].kv_key,
			    rp.rp_kv[i].kv_keylen));
			CHECK(fuzz_inside(buf, len, rp.rp_kv[i].kv_value,
			    rp.rp_kv[i].kv_valuelen));
			CHECK(rp.rp_kv[i].kv_value[rp.rp_kv[i].kv_valuelen] ==
			    '\0');
		}
		(void)helper_reply_get(&rp, "log");
	}
	free(buf);
}

/* Any bytes quoted into log="..." come back exactly (minus NULs). */
static void
fuzz_quote(const uint8_t *data, size_t len)
{
	struct helper_reply	 rp;
	const struct helper_kv	*kv;
	char			*line, *want;
	size_t			 n, i, wlen = 0;

	n = helper_quote(NULL, 0, (const char *)data, len);
	CHECK(n == helper_quote_inner_len((const char *)data, len) + 2);
	if ((line = malloc(n + 16)) == NULL || (want = malloc(len + 1)) ==
	    NULL)
		abort();
	memcpy(line, "7 OK log=", 9);
	CHECK(helper_quote(line + 9, n + 1, (const char *)data, len) == n);
	CHECK(strlen(line) == n + 9);
	CHECK(helper_reply_parse(line, n + 9, &rp) == 0);
	CHECK(rp.rp_result == HELPER_OK && rp.rp_idnum == 7);
	CHECK((kv = helper_reply_get(&rp, "log")) != NULL);
	for (i = 0; i < len; i++)
		if (data[i] != '\0')
			want[wlen++] = (char)data[i];
	CHECK(kv->kv_valuelen == wlen);
	CHECK(memcmp(kv->kv_value, want, wlen) == 0);
	free(line);
	free(want);
}

/* Escaping round-trips unless the value holds a NUL (Squid keeps %00). */
static void
fuzz_escape(const uint8_t *data, size_t len)
{
	char	*buf, small[7];
	size_t	 n;

	n = helper_escape(NULL, 0, (const char *)data, len);
	if ((buf = malloc(n + 1)) == NULL)
		abort();
	CHECK(helper_escape(buf, n + 1, (const char *)data, len) == n);
	CHECK(strlen(buf) == n);
	CHECK(strpbrk(buf, " \"\t\r\n") == NULL);
	helper_escape(small, sizeof(small), (const char *)data, len);
	CHECK(strlen(small) < sizeof(small));
	if (memchr(data, '\0', len) == NULL) {
		CHECK(helper_unescape(buf, n) == len);
		CHECK(memcmp(buf, data, len) == 0);
	}
	free(buf);
}

/* podmeta: one request line gives exactly one well-formed reply line. */
static void
fuzz_request(const uint8_t *data, size_t len, enum helper_idmode idmode,
    size_t addrtok)
{
	static const char	 tail[] = "\\\",\\\"x\\\":1}\" pod=p";
	struct proto_req	 pr;
	struct buf		 pb = BUF_INITIALIZER(0);
	struct helper_reply	 rp;
	enum proto_answer	 ans;
	char			*buf = fuzz_copy(data, len);
	int			 rc;

	rc = proto_parse_as(buf, len, idmode, addrtok, &pr);
	CHECK((rc == -1) == (pr.pr_error != NULL));
	CHECK(strlen(pr.pr_id) <= HELPER_ID_MAXLEN);
	/* --channel-id yes: an answer always carries one; no: never */
	if (idmode == HELPER_ID_REQUIRED && rc == 0)
		CHECK(pr.pr_id[0] != '\0');
	if (idmode == HELPER_ID_NONE)
		CHECK(pr.pr_id[0] == '\0');
	for (ans = PROTO_HIT; ans <= PROTO_BAD; ans++) {
		if (rc == -1 && ans != PROTO_BAD)
			continue;
		if (rc == 0 && ans == PROTO_BAD)
			continue;
		buf_reset(&pb);
		CHECK(proto_reply(&pb, &pr, ans, ans == PROTO_HIT ? tail :
		    ans == PROTO_BH ? "no pod list yet" : NULL,
		    ans == PROTO_HIT ? sizeof(tail) - 1 : 0) == 0);
		CHECK(pb.b_len > 0 && pb.b_data[pb.b_len - 1] == '\n');
		CHECK(memchr(pb.b_data, '\n', pb.b_len) ==
		    pb.b_data + pb.b_len - 1);
		CHECK(helper_reply_parse(pb.b_data, pb.b_len, &rp) == 0);
		CHECK(rp.rp_result != HELPER_UNKNOWN);
		CHECK((rp.rp_id != NULL) == (pr.pr_id[0] != '\0'));
		if (rp.rp_id != NULL)
			CHECK(strcmp(rp.rp_id, pr.pr_id) == 0);
		CHECK(rp.rp_rest == NULL);
	}
	buf_free(&pb);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	fuzz_reply(data, len);
	fuzz_quote(data, len);
	fuzz_escape(data, len);
	/* podmeta's defaults, then --channel-id and --address-token */
	fuzz_request(data, len, HELPER_ID_AUTO, 1);
	fuzz_request(data, len, HELPER_ID_REQUIRED, 1 + (len ? data[0] % 3 : 0));
	fuzz_request(data, len, HELPER_ID_NONE, 1 + (len ? data[0] % 5 : 0));
	return 0;
}
