/* addr.h: IP addresses as text and as 16-byte keys (IPv4 as ::ffff:a.b.c.d) */
#ifndef ADDR_H
#define ADDR_H

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <stddef.h>

/* room for any address addr_ntop() writes, with its NUL */
#define ADDR_STRLEN	INET6_ADDRSTRLEN

/*
 * The address of ss as text into buf (len >= ADDR_STRLEN), and its port
 * into *port if port is not NULL.  An IPv4-mapped IPv6 address (a v4
 * client on a dual-stack socket) is written as plain IPv4, as Squid
 * shows it.  Returns 0, or -1 if ss is neither AF_INET nor AF_INET6.
 */
int	addr_ntop(const struct sockaddr_storage *ss, char *buf, size_t len,
	    int *port);

/*
 * The key of ss: its address as IPv6, IPv4 as ::ffff:a.b.c.d, so that a
 * dual-stack listener and an IPv4 one agree on a client.  Returns 0, or
 * -1 (key zeroed) if ss is neither AF_INET nor AF_INET6.
 */
int	addr_key(const struct sockaddr_storage *ss, struct in6_addr *key);

/* The key of raw address bytes: af AF_INET (4 bytes) or AF_INET6 (16). */
void	addr_key_raw(int af, const void *src, struct in6_addr *key);

/*
 * Parse IPv4 or IPv6 text (nothing around it) into a key; *af, if not
 * NULL, says which it was.  Returns 0, or -1 if s is neither.
 */
int	addr_key_parse(const char *s, struct in6_addr *key, int *af);

/* The port of ss (host order); 0 if ss is neither AF_INET nor AF_INET6. */
int	addr_port(const struct sockaddr_storage *ss);

/* 1 if ss is the wildcard address, 0.0.0.0 or [::]. */
int	addr_is_any(const struct sockaddr_storage *ss);

/*
 * If key is an IPv6 address that carries an IPv4 address to reach
 * (the NAT64 well-known prefix 64:ff9b::/96 (RFC 6052), IPv4-compatible
 * ::/96 but ::0.0.0.x (RFC 4291), 6to4 2002::/16 (RFC 3056)), the
 * IPv4 address's key into *v4 and 1; else 0.  IPv4-mapped keys are IPv4
 * already.
 */
int	addr_key_embedded_v4(const struct in6_addr *key, struct in6_addr *v4);

/*
 * 1 if listening sockets on a and b cannot both be bound: the same port
 * and the same address, or a wildcard of the same family; [::] is taken
 * to be dual-stack (IPV6_V6ONLY off), so it clashes with IPv4 too.
 */
int	addr_bind_clash(const struct sockaddr_storage *a,
	    const struct sockaddr_storage *b);

/* A key as text: IPv4-mapped as IPv4.  buf holds ADDR_STRLEN bytes. */
void	addr_key_ntop(const struct in6_addr *key, char *buf, size_t len);

#endif
