/* sdnotify.c: systemd's service notification protocol (sd_notify(3)), without libsystemd */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connectd.h"

/*
 * Under Type=notify, systemd passes the address of a datagram socket in
 * NOTIFY_SOCKET: a path, or an abstract name when it starts with '@'.
 * A message is newline-separated KEY=VALUE assignments in one datagram;
 * systemd reads the sender's pid from the credentials the kernel
 * attaches, so only connectd's main process sends (NotifyAccess=main).
 * The whole protocol is this: libsystemd would bring nothing more.
 *
 * The socket is connected when connectd starts, as root, so that a
 * notification after the privilege drop still reaches a socket in a
 * directory only root may search (systemd's own is world-writable).
 * NOTIFY_SOCKET is taken out of the environment at once: a helper must
 * not inherit it and report for connectd.
 */

#define SDNOTIFY_MAX	512

static int			 sdn_fd = -1;
static struct sockaddr_un	 sdn_addr;
static socklen_t		 sdn_addrlen;
static int			 sdn_warned;

static int
sdnotify_connect(void)
{
	int	 fd;

	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sdn_addr, sdn_addrlen) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Called once at startup, before anything is forked or spawned: take
 * NOTIFY_SOCKET from the environment (it is unset whatever happens) and
 * connect to it.  0 if there is none, or when connected; -1 with the
 * reason in err (a bad address, a socket that cannot be reached), and
 * then sdnotify() does nothing.
 */
int
sdnotify_init(char *err, size_t errlen)
{
	const char	*env;
	size_t		 len;

	if ((env = getenv("NOTIFY_SOCKET")) == NULL)
		return 0;
	memset(&sdn_addr, 0, sizeof(sdn_addr));
	sdn_addr.sun_family = AF_UNIX;
	len = strlen(env);
	if ((env[0] != '/' && env[0] != '@') || len < 2 ||
	    len >= sizeof(sdn_addr.sun_path)) {
		snprintf(err, errlen, "NOTIFY_SOCKET %.100s: not a socket "
		    "path or abstract name", env);
		(void)unsetenv("NOTIFY_SOCKET");
		return -1;
	}
	memcpy(sdn_addr.sun_path, env, len);
	if (env[0] == '@')
		sdn_addr.sun_path[0] = '\0';	/* abstract: no NUL at its end */
	sdn_addrlen = offsetof(struct sockaddr_un, sun_path) + len +
	    (env[0] == '@' ? 0 : 1);
	if ((sdn_fd = sdnotify_connect()) == -1) {
		snprintf(err, errlen, "NOTIFY_SOCKET %.100s: %s", env,
		    strerror(errno));
		(void)unsetenv("NOTIFY_SOCKET");
		return -1;
	}
	(void)unsetenv("NOTIFY_SOCKET");
	return 0;
}

/*
 * Send one notification, printf-style ("READY=1\nSTATUS=...").  Does
 * nothing without NOTIFY_SOCKET.  Never blocks the loop (a full socket
 * loses the message) and never fails the caller: if the socket
 * has gone (systemd re-executed), it connects again once; a failure is
 * logged, the first time only.  From the main thread only.
 */
void
sdnotify(const char *fmt, ...)
{
	char	 msg[SDNOTIFY_MAX];
	va_list	 ap;
	int	 n, fd;

	if (sdn_fd == -1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	if (send(sdn_fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n)
		return;
	if ((fd = sdnotify_connect()) != -1) {
		close(sdn_fd);
		sdn_fd = fd;
		if (send(sdn_fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n)
			return;
	}
	if (!sdn_warned++)
		log_warn("cannot notify the service manager (NOTIFY_SOCKET)");
}

/* Microseconds of CLOCK_MONOTONIC, for RELOADING=1's MONOTONIC_USEC. */
unsigned long long
sdnotify_monotonic_usec(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;
	return (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL;
}
