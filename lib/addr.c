/* addr.c: IP addresses as text and as 16-byte keys (IPv4 as ::ffff:a.b.c.d) */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <string.h>

#include "addr.h"
#include "util.h"

void
addr_key_raw(int af, const void *src, struct in6_addr *key)
{
	if (af == AF_INET6) {
		memcpy(key, src, sizeof(*key));
		return;
	}
	memset(key, 0, sizeof(*key));
	key->s6_addr[10] = key->s6_addr[11] = 0xff;
	memcpy(&key->s6_addr[12], src, 4);
}

int
addr_key(const struct sockaddr_storage *ss, struct in6_addr *key)
{
	switch (ss->ss_family) {
	case AF_INET:
		addr_key_raw(AF_INET,
		    &((const struct sockaddr_in *)ss)->sin_addr, key);
		return 0;
	case AF_INET6:
		addr_key_raw(AF_INET6,
		    &((const struct sockaddr_in6 *)ss)->sin6_addr, key);
		return 0;
	}
	memset(key, 0, sizeof(*key));
	return -1;
}

int
addr_key_parse(const char *s, struct in6_addr *key, int *af)
{
	unsigned char	 b[sizeof(struct in6_addr)];
	int		 fam;

	if (inet_pton(AF_INET, s, b) == 1)
		fam = AF_INET;
	else if (inet_pton(AF_INET6, s, b) == 1)
		fam = AF_INET6;
	else
		return -1;
	addr_key_raw(fam, b, key);
	if (af != NULL)
		*af = fam;
	return 0;
}

void
addr_key_ntop(const struct in6_addr *key, char *buf, size_t len)
{
	const char	*p;
	size_t		 i, n = 0;

	if (IN6_IS_ADDR_V4MAPPED(key) && len >= INET_ADDRSTRLEN) {
		/* every log line has two: by hand, as inet_ntop would */
		for (i = 12; i < 16; i++) {
			n += fmt_u64(buf + n, key->s6_addr[i]);
			buf[n++] = i < 15 ? '.' : '\0';
		}
		return;
	}
	if (IN6_IS_ADDR_V4MAPPED(key))
		p = inet_ntop(AF_INET, &key->s6_addr[12], buf, len);
	else
		p = inet_ntop(AF_INET6, key, buf, len);
	if (p == NULL && len > 0)
		buf[0] = '\0';
}

int
addr_port(const struct sockaddr_storage *ss)
{
	switch (ss->ss_family) {
	case AF_INET:
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	case AF_INET6:
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	}
	return 0;
}

int
addr_is_any(const struct sockaddr_storage *ss)
{
	switch (ss->ss_family) {
	case AF_INET:
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
		    htonl(INADDR_ANY);
	case AF_INET6:
		return IN6_IS_ADDR_UNSPECIFIED(
		    &((const struct sockaddr_in6 *)ss)->sin6_addr);
	}
	return 0;
}

int
addr_ntop(const struct sockaddr_storage *ss, char *buf, size_t len,
    int *port)
{
	struct in6_addr	 key;

	if (addr_key(ss, &key) == -1)
		return -1;
	addr_key_ntop(&key, buf, len);
	if (port != NULL)
		*port = addr_port(ss);
	return 0;
}

int
addr_key_embedded_v4(const struct in6_addr *k, struct in6_addr *v4)
{
	static const uint8_t	 nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
	static const uint8_t	 zero[12];
	const uint8_t		*b = k->s6_addr;

	if (memcmp(b, nat64, 12) == 0) {
		addr_key_raw(AF_INET, b + 12, v4);
		return 1;
	}
	if (memcmp(b, zero, 12) == 0 && (b[12] | b[13] | b[14]) != 0) {
		addr_key_raw(AF_INET, b + 12, v4);
		return 1;
	}
	if (b[0] == 0x20 && b[1] == 0x02) {
		addr_key_raw(AF_INET, b + 2, v4);
		return 1;
	}
	return 0;
}

int
addr_bind_clash(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b)
{
	struct in6_addr	 ka, kb;

	if (addr_port(a) != addr_port(b))
		return 0;
	if (a->ss_family == b->ss_family && addr_key(a, &ka) == 0 &&
	    addr_key(b, &kb) == 0 && memcmp(&ka, &kb, sizeof(ka)) == 0)
		return 1;
	if ((a->ss_family == AF_INET6 && addr_is_any(a)) ||
	    (b->ss_family == AF_INET6 && addr_is_any(b)))
		return 1;
	return a->ss_family == b->ss_family &&
	    (addr_is_any(a) || addr_is_any(b));
}
