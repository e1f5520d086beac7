/*
 * unit-lib.c: unit tests of lib/ (buf.h, hash.h, addr.h, util.h, net.h, timefmt.h), as TAP.
 *
 * Each check is one test point; the contracts tested are the comments of
 * the headers.  make check runs it through the TAP driver like the
 * scenarios.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <time.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "hash.h"
#include "net.h"
#include "timefmt.h"
#include "util.h"

#include "tap.h"

/* b holds exactly len bytes equal to want, NUL-terminated */
static int
holds(const struct buf *b, const char *want, size_t len)
{
	return b->b_len == len && b->b_data != NULL &&
	    memcmp(b->b_data, want, len) == 0 && b->b_data[len] == '\0';
}

/* ------------------------------------------------------------ buf.h */

static void
test_buf(void)
{
	struct buf	 b = BUF_INITIALIZER(0), z;
	char		*p, big[1000];
	size_t		 avail, len, i;
	int		 bounded_ok;

	/* a zeroed struct buf: empty, no bound, no memory */
	memset(&z, 0, sizeof(z));
	ok(z.b_data == NULL && buf_take(&z, &len) == NULL && len == 0,
	    "buf: a zeroed buffer has no memory; buf_take gives NULL");
	ok(buf_addstr(&z, "zero") == 0 && holds(&z, "zero", 4),
	    "buf: a zeroed buffer takes appends");
	buf_free(&z);

	ok(buf_add(&b, "abc", 3) == 0 && holds(&b, "abc", 3),
	    "buf_add: 3 bytes, NUL-terminated");
	ok(buf_addc(&b, 'd') == 0 && buf_addstr(&b, "ef") == 0 &&
	    holds(&b, "abcdef", 6), "buf_addc, buf_addstr append");
	ok(buf_add(&b, "", 0) == 0 && holds(&b, "abcdef", 6),
	    "buf_add of 0 bytes changes nothing");
	ok(buf_add(&b, "x\0y", 3) == 0 && holds(&b, "abcdefx\0y", 9),
	    "buf_add: binary data with a NUL inside");

	/* growth keeps the data and the NUL */
	for (i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	buf_reset(&b);
	ok(b.b_len == 0 && b.b_data != NULL && b.b_data[0] == '\0',
	    "buf_reset: empty, memory kept, NUL-terminated");
	for (i = 0; i < 50; i++)
		if (buf_add(&b, big, sizeof(big)) == -1)
			break;
	ok(i == 50 && b.b_len == 50 * sizeof(big) &&
	    b.b_cap > b.b_len && b.b_data[b.b_len] == '\0' &&
	    memcmp(b.b_data + 49 * sizeof(big), big, sizeof(big)) == 0,
	    "buf: grows to 50000 bytes, data and NUL intact (cap %zu)",
	    b.b_cap);

	/* drop */
	buf_reset(&b);
	buf_addstr(&b, "hello world");
	buf_drop(&b, 6);
	ok(holds(&b, "world", 5), "buf_drop(6): the rest moves to the front");
	buf_drop(&b, 0);
	ok(holds(&b, "world", 5), "buf_drop(0): nothing changes");
	buf_drop(&b, 5);
	ok(b.b_len == 0 && b.b_data[0] == '\0', "buf_drop(all): empty");
	buf_addstr(&b, "abc");
	buf_drop(&b, 100);
	ok(b.b_len == 0 && b.b_data[0] == '\0',
	    "buf_drop(more than held): empty");

	/* take */
	buf_addstr(&b, "taken");
	p = buf_take(&b, &len);
	ok(p != NULL && len == 5 && strcmp(p, "taken") == 0,
	    "buf_take: the string and its length");
	ok(b.b_data == NULL && b.b_len == 0 && b.b_cap == 0,
	    "buf_take: the buffer is left empty, without memory");
	free(p);
	ok(buf_addstr(&b, "again") == 0 && holds(&b, "again", 5),
	    "buf: usable again after buf_take");
	p = buf_take(&b, NULL);
	ok(p != NULL && strcmp(p, "again") == 0, "buf_take(NULL lenp)");
	free(p);

	/* space + commit, no bound */
	p = buf_space(&b, 100, &avail);
	ok(p != NULL && avail >= 100, "buf_space(100): %zu bytes of room",
	    avail);
	if (p != NULL) {
		memcpy(p, "0123456789", 10);
		buf_commit(&b, 10);
	}
	ok(holds(&b, "0123456789", 10), "buf_commit(10): counted as data, "
	    "NUL-terminated");
	p = buf_space(&b, 0, &avail);
	ok(p == b.b_data + 10 && avail >= 1,
	    "buf_space(0): room at the end of the data");
	buf_free(&b);
	ok(b.b_data == NULL && b.b_len == 0, "buf_free: empty, no memory");

	/* the bound */
	buf_init(&b, 10);
	ok(buf_add(&b, "0123456789", 10) == 0 && holds(&b, "0123456789", 10),
	    "bound 10: 10 bytes fit");
	ok(buf_addc(&b, 'x') == -1 && holds(&b, "0123456789", 10),
	    "bound 10: the 11th byte is refused, buffer unchanged");
	ok(buf_space(&b, 1, &avail) == NULL,
	    "bound 10: buf_space at the bound gives NULL");
	buf_drop(&b, 4);
	ok(buf_add(&b, "abcde", 5) == -1 && holds(&b, "456789", 6),
	    "bound 10: an append passing it fails as a whole");
	ok(buf_add(&b, "abcd", 4) == 0 && holds(&b, "456789abcd", 10),
	    "bound 10: after a drop, appends up to it work");
	ok(b.b_cap <= 11, "bound 10: no more memory than the bound needs "
	    "(cap %zu)", b.b_cap);
	buf_free(&b);
	ok(b.b_max == 10, "buf_free keeps the bound");

	buf_init(&b, 300);
	p = buf_space(&b, 1000, &avail);
	ok(p != NULL && avail == 300,
	    "bound 300: buf_space(1000) offers what the bound leaves (%zu)",
	    p != NULL ? avail : 0);
	if (p != NULL) {
		memset(p, 'q', avail);
		buf_commit(&b, avail);
	}
	ok(b.b_len == 300 && b.b_data[300] == '\0',
	    "bound 300: committing all of it, still NUL-terminated");
	ok(buf_space(&b, 1, &avail) == NULL && buf_addc(&b, 'x') == -1,
	    "bound 300: full");
	buf_drop(&b, 290);
	p = buf_space(&b, 1000, &avail);
	ok(p == b.b_data + 10 && avail == 290,
	    "bound 300: after a drop, buf_space offers 290 (%zu)",
	    p != NULL ? avail : 0);
	buf_free(&b);

	/* the bound holds across many small appends */
	buf_init(&b, 1000);
	bounded_ok = 1;
	for (i = 0; i < 2000; i++)
		if (buf_addc(&b, 'z') != (i < 1000 ? 0 : -1))
			bounded_ok = 0;
	ok(bounded_ok && b.b_len == 1000 && b.b_data[1000] == '\0',
	    "bound 1000: 2000 one-byte appends, the first 1000 succeed");
	buf_free(&b);
}

/* ----------------------------------------------------------- hash.h */

struct item {
	struct hnode	 node;
	unsigned	 key;
	int		 popped;
};

static int
item_match(const struct hnode *n, const void *key)
{
	return container_of(n, struct item, node)->key ==
	    *(const unsigned *)key;
}

static uint64_t
key_hash(unsigned k)
{
	return hash_bytes(&k, sizeof(k));
}

/* a hash that collides a lot: 8 values for all keys */
static uint64_t
bad_hash(unsigned k)
{
	return (uint64_t)(k % 8) * 0x9e3779b97f4a7c15ULL;
}

static struct item *
find(struct htab *t, unsigned k, uint64_t (*hf)(unsigned))
{
	struct hnode	*n = htab_find(t, hf(k), item_match, &k);

	return n != NULL ? container_of(n, struct item, node) : NULL;
}

static void
test_table(uint64_t (*hf)(unsigned), const char *what)
{
	enum { N = 10000 };
	struct htab	 t;
	struct item	*items;
	struct hnode	*n;
	unsigned	 i, k;
	size_t		 popped;
	int		 all;

	items = calloc(N, sizeof(*items));
	if (items == NULL) {
		ok(0, "%s: calloc", what);
		return;
	}
	ok(htab_init(&t, 4) == 0 && t.ht_size == 16 && t.ht_count == 0,
	    "%s: htab_init(4): 16 buckets, empty", what);
	k = 1;
	ok(htab_find(&t, hf(k), item_match, &k) == NULL,
	    "%s: an empty table finds nothing", what);

	for (i = 0; i < N; i++) {
		items[i].key = i * 7 + 1;
		htab_insert(&t, &items[i].node, hf(items[i].key));
	}
	ok(t.ht_count == N, "%s: %d nodes counted", what, N);
	ok(t.ht_size >= N && (t.ht_size & (t.ht_size - 1)) == 0,
	    "%s: grew to %zu buckets, a power of two, no fewer than the "
	    "nodes", what, t.ht_size);
	all = 1;
	for (i = 0; i < N; i++)
		if (find(&t, i * 7 + 1, hf) != &items[i])
			all = 0;
	ok(all, "%s: every key finds its own node", what);
	all = 1;
	for (i = 0; i < N; i++)
		if (find(&t, i * 7 + 2, hf) != NULL)
			all = 0;
	ok(all, "%s: keys never inserted find nothing", what);

	/* remove every other node */
	for (i = 0; i < N; i += 2)
		htab_remove(&t, &items[i].node);
	ok(t.ht_count == N / 2, "%s: %d left after removing half", what,
	    N / 2);
	all = 1;
	for (i = 0; i < N; i++)
		if (find(&t, i * 7 + 1, hf) != (i % 2 ? &items[i] : NULL))
			all = 0;
	ok(all, "%s: removed keys are gone, the others still found", what);

	/* re-insert one removed key */
	htab_insert(&t, &items[0].node, hf(items[0].key));
	ok(find(&t, items[0].key, hf) == &items[0] && t.ht_count == N / 2 + 1,
	    "%s: a removed node can be inserted again", what);

	/* pop everything */
	popped = 0;
	all = 1;
	while ((n = htab_pop(&t)) != NULL) {
		struct item	*it = container_of(n, struct item, node);

		if (it->popped++ || (it != &items[0] && (it - items) % 2 == 0))
			all = 0;
		popped++;
		if (popped > N)
			break;
	}
	ok(popped == N / 2 + 1 && all && t.ht_count == 0,
	    "%s: htab_pop gives every node once (%zu), then NULL", what,
	    popped);
	k = items[1].key;
	ok(htab_find(&t, hf(k), item_match, &k) == NULL,
	    "%s: nothing found after popping all", what);
	htab_insert(&t, &items[1].node, hf(k));
	ok(find(&t, k, hf) == &items[1] && htab_pop(&t) == &items[1].node &&
	    htab_pop(&t) == NULL, "%s: insert after pop, pop again", what);
	htab_free(&t);
	ok(t.ht_bucket == NULL && t.ht_size == 0 && t.ht_count == 0,
	    "%s: htab_free", what);
	free(items);
}

static void
test_hash(void)
{
	struct htab	 t;
	struct item	 a, b, c;
	unsigned	 k;

	/* FNV-1a 64 test vectors */
	ok(hash_bytes("", 0) == 0xcbf29ce484222325ULL,
	    "hash_bytes(\"\") is the FNV-1a offset basis");
	ok(hash_bytes("a", 1) == 0xaf63dc4c8601ec8cULL,
	    "hash_bytes(\"a\") = af63dc4c8601ec8c");
	ok(hash_bytes("foobar", 6) == 0x85944171f73967e8ULL,
	    "hash_bytes(\"foobar\") = 85944171f73967e8");

	ok(htab_init(&t, 1000) == 0 && t.ht_size == 1024,
	    "htab_init(1000): 1024 buckets");
	htab_free(&t);

	/* three keys under one hash: a chain */
	htab_init(&t, 0);
	a.key = 1; b.key = 2; c.key = 3;
	htab_insert(&t, &a.node, 42);
	htab_insert(&t, &b.node, 42);
	htab_insert(&t, &c.node, 42);
	k = 2;
	ok(htab_find(&t, 42, item_match, &k) == &b.node,
	    "one hash, three keys: the matcher picks the right node");
	k = 4;
	ok(htab_find(&t, 42, item_match, &k) == NULL,
	    "one hash: a fourth key finds nothing");
	k = 1;
	ok(htab_find(&t, 43, item_match, &k) == NULL,
	    "the right key under another hash finds nothing");
	htab_remove(&t, &b.node);
	k = 1;
	ok(htab_find(&t, 42, item_match, &k) == &a.node &&
	    (k = 3, htab_find(&t, 42, item_match, &k) == &c.node) &&
	    (k = 2, htab_find(&t, 42, item_match, &k) == NULL) &&
	    t.ht_count == 2, "removing the middle of a chain keeps the rest");
	htab_free(&t);

	test_table(key_hash, "FNV keys");
	test_table(bad_hash, "colliding keys");
}

/* ----------------------------------------------------------- addr.h */

static void
sa4(struct sockaddr_storage *ss, const char *ip, int port)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
}

static void
sa6(struct sockaddr_storage *ss, const char *ip, int port)
{
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
}

static void
test_addr(void)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_un	*sun;
	struct in6_addr		 k1, k2, want;
	char			 buf[ADDR_STRLEN], small[4];
	unsigned char		 raw4[4] = { 10, 1, 2, 3 };
	int			 port, af;

	sa4(&ss, "192.0.2.7", 3128);
	port = 0;
	ok(addr_ntop(&ss, buf, sizeof(buf), &port) == 0, "addr_ntop(v4) = 0");
	is_str(buf, "192.0.2.7", "addr_ntop(v4): dotted quad");
	ok(port == 3128, "addr_ntop(v4): port %d", port);
	ok(addr_key(&ss, &k1) == 0 && IN6_IS_ADDR_V4MAPPED(&k1) &&
	    memcmp(&k1.s6_addr[12], "\xc0\x00\x02\x07", 4) == 0,
	    "addr_key(v4): ::ffff:192.0.2.7");

	sa6(&ss, "2001:db8::1", 443);
	ok(addr_ntop(&ss, buf, sizeof(buf), &port) == 0 && port == 443,
	    "addr_ntop(v6) = 0, port 443");
	is_str(buf, "2001:db8::1", "addr_ntop(v6): compressed text");
	ok(addr_key(&ss, &k2) == 0 &&
	    memcmp(&k2, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16) == 0,
	    "addr_key(v6): the address itself");
	ok(addr_ntop(&ss, buf, sizeof(buf), NULL) == 0,
	    "addr_ntop with no port pointer");

	/* a v4 client on a dual-stack socket */
	sa6(&ss, "::ffff:192.0.2.7", 40000);
	ok(addr_ntop(&ss, buf, sizeof(buf), &port) == 0 && port == 40000,
	    "addr_ntop(v4-mapped) = 0, port 40000");
	is_str(buf, "192.0.2.7", "addr_ntop(v4-mapped): plain IPv4 text");
	ok(addr_key(&ss, &k2) == 0 && memcmp(&k1, &k2, sizeof(k1)) == 0,
	    "addr_key: v4-mapped and v4 clients share one key");

	sa6(&ss, "::1", 1);
	addr_ntop(&ss, buf, sizeof(buf), NULL);
	is_str(buf, "::1", "addr_ntop(::1)");
	sa4(&ss, "0.0.0.0", 0);
	addr_ntop(&ss, buf, sizeof(buf), &port);
	is_str(buf, "0.0.0.0", "addr_ntop(0.0.0.0)");

	/* bad family */
	memset(&ss, 0, sizeof(ss));
	sun = (struct sockaddr_un *)&ss;
	sun->sun_family = AF_UNIX;
	strcpy(sun->sun_path, "/tmp/x");
	memset(&k1, 0xaa, sizeof(k1));
	memset(&want, 0, sizeof(want));
	ok(addr_key(&ss, &k1) == -1 && memcmp(&k1, &want, 16) == 0,
	    "addr_key(AF_UNIX) = -1, key zeroed");
	port = 7;
	ok(addr_ntop(&ss, buf, sizeof(buf), &port) == -1 && port == 7,
	    "addr_ntop(AF_UNIX) = -1, port untouched");
	ss.ss_family = AF_UNSPEC;
	ok(addr_key(&ss, &k1) == -1 && addr_ntop(&ss, buf, sizeof(buf),
	    NULL) == -1, "AF_UNSPEC: -1 from both");

	/* raw bytes */
	addr_key_raw(AF_INET, raw4, &k1);
	addr_key_ntop(&k1, buf, sizeof(buf));
	is_str(buf, "10.1.2.3", "addr_key_raw(AF_INET) -> addr_key_ntop");
	inet_pton(AF_INET6, "fd00::5", &want);
	addr_key_raw(AF_INET6, &want, &k2);
	ok(memcmp(&k2, &want, 16) == 0, "addr_key_raw(AF_INET6): a copy");

	/* parse */
	ok(addr_key_parse("10.1.2.3", &k2, &af) == 0 && af == AF_INET &&
	    memcmp(&k1, &k2, 16) == 0, "addr_key_parse(v4): AF_INET, the "
	    "same key as the raw bytes");
	ok(addr_key_parse("::ffff:10.1.2.3", &k2, &af) == 0 &&
	    af == AF_INET6 && memcmp(&k1, &k2, 16) == 0,
	    "addr_key_parse(::ffff:10.1.2.3): AF_INET6 text, the v4 key");
	addr_key_ntop(&k2, buf, sizeof(buf));
	is_str(buf, "10.1.2.3", "addr_key_ntop(v4-mapped key): IPv4 text");
	ok(addr_key_parse("FD00:0::5", &k2, NULL) == 0 &&
	    memcmp(&k2, &want, 16) == 0, "addr_key_parse(v6, af NULL)");
	addr_key_ntop(&k2, buf, sizeof(buf));
	is_str(buf, "fd00::5", "addr_key_ntop(v6): canonical text");
	ok(addr_key_parse("", &k2, &af) == -1 &&
	    addr_key_parse("10.1.2", &k2, &af) == -1 &&
	    addr_key_parse("10.1.2.3 ", &k2, &af) == -1 &&
	    addr_key_parse(" 10.1.2.3", &k2, &af) == -1 &&
	    addr_key_parse("10.1.2.256", &k2, &af) == -1 &&
	    addr_key_parse("[::1]", &k2, &af) == -1 &&
	    addr_key_parse("::1%lo", &k2, &af) == -1 &&
	    addr_key_parse("example.com", &k2, &af) == -1,
	    "addr_key_parse: -1 for empty, short, padded, out of range, "
	    "bracketed, scoped and names");
	ok(addr_key_parse("255.255.255.255", &k2, &af) == 0 && af == AF_INET,
	    "addr_key_parse(255.255.255.255)");

	/* longest text fits ADDR_STRLEN; a small buffer gets "" */
	inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
	    &k1);
	addr_key_ntop(&k1, buf, sizeof(buf));
	ok(strlen(buf) > 0 && strlen(buf) < ADDR_STRLEN,
	    "addr_key_ntop: a long address fits ADDR_STRLEN (%s)", buf);
	memset(small, 'x', sizeof(small));
	addr_key_ntop(&k1, small, sizeof(small));
	ok(small[0] == '\0', "addr_key_ntop: too small a buffer gets \"\"");
}

static void
test_util(void)
{
	const char	*digits = "0123456789abcdefABCDEF";
	int		 i, good = 1;

	for (i = 0; digits[i] != '\0'; i++)
		good &= hexval(digits[i]) == (i < 16 ? i : i - 6);
	ok(good, "hexval: every hex digit, both cases");
	ok(hexval('g') == -1 && hexval('/') == -1 && hexval(':') == -1 &&
	    hexval('@') == -1 && hexval('G') == -1 && hexval(0) == -1 &&
	    hexval(0xff) == -1, "hexval: the neighbours of the digits are -1");
}

/* fmt_u64 against printf, at the edges and between */
static void
test_fmt(void)
{
	static const uint64_t	 vals[] = { 0, 1, 9, 10, 99, 100, 65535,
	    4294967295ULL, 4294967296ULL, 1000000000000000000ULL,
	    18446744073709551615ULL };
	char			 a[UTIL_U64_LEN + 1], b[32];
	size_t			 i, n;
	int			 good = 1;

	for (i = 0; i < nitems(vals); i++) {
		n = fmt_u64(a, vals[i]);
		a[n] = '\0';
		snprintf(b, sizeof(b), "%" PRIu64, vals[i]);
		good &= strcmp(a, b) == 0;
	}
	ok(good, "fmt_u64: as printf from 0 to 2^64-1");
}

/*
 * timefmt_rfc3339 keeps the last second: a later time in the same
 * second, the next second, an earlier one, all as gmtime says.
 */
static void
test_timefmt(void)
{
	static const double	 ts[] = { 1764611234.001, 1764611234.9994,
	    1764611234.9996, 1764611235.5, 1764611200.25, 0, 253402300799.999,
	    951782400.0, 1764611234.123 };
	char			 got[TIMEFMT_RFC3339_LEN], want[64], small[10];
	struct tm		 tm;
	time_t			 sec;
	long long		 ms;
	size_t			 i, n;
	int			 good = 1;

	for (i = 0; i < nitems(ts); i++) {
		ms = llround(ts[i] * 1000.0);
		sec = (time_t)(ms / 1000);
		gmtime_r(&sec, &tm);
		snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d."
		    "%03lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		    tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
		n = timefmt_rfc3339(got, sizeof(got), ts[i]);
		if (n != 24 || strcmp(got, want) != 0) {
			good = 0;
			printf("# %.4f: got %s, want %s\n", ts[i], got, want);
		}
	}
	ok(good, "timefmt_rfc3339: each time as gmtime, seconds cached or not");
	ok(timefmt_rfc3339(small, sizeof(small), ts[0]) == 0,
	    "timefmt_rfc3339: a short buffer gets 0");
}

/* The IPv4 fast path of addr_key_ntop writes what inet_ntop writes. */
static void
test_ntop_v4(void)
{
	static const char *const addrs[] = { "0.0.0.0", "1.2.3.4",
	    "10.0.0.1", "127.0.0.1", "192.168.100.200", "255.255.255.255",
	    "9.99.199.255" };
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct in6_addr		 key;
	char			 out[INET6_ADDRSTRLEN];
	size_t			 i;
	int			 good = 1;

	for (i = 0; i < nitems(addrs); i++) {
		memset(&ss, 0, sizeof(ss));
		sin->sin_family = AF_INET;
		inet_pton(AF_INET, addrs[i], &sin->sin_addr);
		addr_key(&ss, &key);
		addr_key_ntop(&key, out, sizeof(out));
		good &= strcmp(out, addrs[i]) == 0;
	}
	ok(good, "addr_key_ntop: IPv4 by hand, as inet_ntop");
}

static void
test_net(void)
{
	static char	 big[1 << 20], back[1 << 20];
	int		 sv[2], sv2[2], err = -1;
	size_t		 n, got = 0;
	ssize_t		 r;

	signal(SIGPIPE, SIG_IGN);
	memset(big, 'x', sizeof(big));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1 ||
	    fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(sv[1], F_SETFL, O_NONBLOCK) == -1) {
		ok(0, "net: socketpair: %s", strerror(errno));
		return;
	}
	n = net_write(sv[0], "hello", 5, &err);
	ok(n == 5 && err == 0, "net_write: a short write goes whole (%zu, %d)",
	    n, err);
	r = read(sv[1], back, sizeof(back));
	ok(r == 5 && memcmp(back, "hello", 5) == 0, "net_write: it arrives");

	/* more than the socket holds: stops where it would block, no error */
	n = net_write(sv[0], big, sizeof(big), &err);
	ok(n > 0 && n < sizeof(big) && err == 0,
	    "net_write: stops where it would block, without an error "
	    "(%zu of %zu)", n, sizeof(big));
	while ((r = read(sv[1], back, sizeof(back))) > 0)
		got += (size_t)r;
	ok(got == n, "net_write: what it counted is what arrived (%zu)", got);

	n = net_write(sv[0], big, 0, &err);
	ok(n == 0 && err == 0, "net_write: nothing to write is no error");

	/* net_drain: reads what there is, 0 while more may come, -1 at EOF */
	n = net_write(sv[0], big, 100000, &err);
	ok(net_drain(sv[1]) == 0, "net_drain: what is there, then 0 (more "
	    "may come)");
	r = read(sv[1], back, sizeof(back));
	ok(r == -1 && errno == EAGAIN, "net_drain: it read all %zu bytes", n);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv2) == 0 &&
	    fcntl(sv2[1], F_SETFL, O_NONBLOCK) == 0) {
		(void)!write(sv2[0], "tail", 4);
		close(sv2[0]);
		ok(net_drain(sv2[1]) == -1, "net_drain: data then EOF gives -1");
		close(sv2[1]);
	} else
		ok(0, "net_drain: socketpair: %s", strerror(errno));
	ok(net_drain(-1) == -1, "net_drain: a bad descriptor gives -1");

	/* the peer is gone: the errno, and no byte counted */
	close(sv[1]);
	n = net_write(sv[0], "x", 1, &err);
	ok(n == 0 && err == EPIPE, "net_write: a closed peer gives EPIPE "
	    "(%zu, %s)", n, strerror(err));
	close(sv[0]);
	n = net_write(sv[0], "x", 1, &err);
	ok(n == 0 && err == EBADF, "net_write: a bad descriptor gives EBADF");
}

int
main(void)
{
	test_buf();
	test_hash();
	test_addr();
	test_util();
	test_fmt();
	test_timefmt();
	test_ntop_v4();
	test_net();
	return done_testing();
}
