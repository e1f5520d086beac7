/* acl.c: (being written) */
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdio.h>

#include "connectd.h"

int
acl_conf_directive(struct conf *c, int argc, char **argv, char *err,
    size_t errlen)
{
	snprintf(err, errlen, "%s is not supported yet", argv[0]);
	return -1;
}

int
acl_conf_finish(struct conf *c, char *err, size_t errlen)
{
	return 0;
}

void
acl_conf_dump(const struct conf *c, FILE *fp)
{
}

void
acl_conf_free(struct conf *c)
{
}

/* Until access rules exist, only loopback clients are served. */
int
acl_check(struct conn *c, const char **rule)
{
	const struct sockaddr_storage	*ss = &c->c_rec.lr_client;
	const struct sockaddr_in6	*sin6;

	*rule = "default: loopback clients only";
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr)
		    >> 24) == 127 ? ACL_ALLOW : ACL_DENY;
	if (ss->ss_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return ACL_ALLOW;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
		    sin6->sin6_addr.s6_addr[12] == 127)
			return ACL_ALLOW;
	}
	return ACL_DENY;
}
