/*
 * shortio.c: an LD_PRELOAD shim for the tests: every write to a TCP
 * socket is cut short, and every third one says EAGAIN, as a busy peer
 * or a full socket buffer would.  A proxy must keep the bytes in order
 * whatever the kernel takes.  SHORTIO_MAX (default 7) bounds each write.
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static ssize_t	(*real_write)(int, const void *, size_t);
static ssize_t	(*real_writev)(int, const struct iovec *, int);
static ssize_t	(*real_send)(int, const void *, size_t, int);
static size_t	 shortio_max = 7;
static unsigned	 calls;

static void
shortio_init(void)
{
	const char	*s;

	if (real_write != NULL)
		return;
	real_write = (ssize_t (*)(int, const void *, size_t))
	    dlsym(RTLD_NEXT, "write");
	real_writev = (ssize_t (*)(int, const struct iovec *, int))
	    dlsym(RTLD_NEXT, "writev");
	real_send = (ssize_t (*)(int, const void *, size_t, int))
	    dlsym(RTLD_NEXT, "send");
	if ((s = getenv("SHORTIO_MAX")) != NULL && atoi(s) > 0)
		shortio_max = (size_t)atoi(s);
}

/* A TCP socket: not a pipe, a file, a unix or UDP socket, an eventfd. */
static int
shortio_tcp(int fd)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss), tlen = sizeof(int);
	struct stat		 st;
	int			 type;

	if (fstat(fd, &st) == -1 || !S_ISSOCK(st.st_mode))
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == -1 ||
	    type != SOCK_STREAM)
		return 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return 0;
	return ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
}

/* How much of len this call may write: 0 means EAGAIN. */
static size_t
shortio_allow(size_t len)
{
	if (++calls % 3 == 0)
		return 0;
	return len < shortio_max ? len : shortio_max;
}

ssize_t
write(int fd, const void *p, size_t len)
{
	size_t	 n;

	shortio_init();
	if (len == 0 || !shortio_tcp(fd))
		return real_write(fd, p, len);
	if ((n = shortio_allow(len)) == 0) {
		errno = EAGAIN;
		return -1;
	}
	return real_write(fd, p, n);
}

ssize_t
send(int fd, const void *p, size_t len, int flags)
{
	size_t	 n;

	shortio_init();
	if (len == 0 || !shortio_tcp(fd))
		return real_send(fd, p, len, flags);
	if ((n = shortio_allow(len)) == 0) {
		errno = EAGAIN;
		return -1;
	}
	return real_send(fd, p, n, flags);
}

ssize_t
writev(int fd, const struct iovec *iov, int iovcnt)
{
	size_t	 n;
	int	 i;

	shortio_init();
	for (i = 0; i < iovcnt && iov[i].iov_len == 0; i++)
		;
	if (i == iovcnt || !shortio_tcp(fd))
		return real_writev(fd, iov, iovcnt);
	if ((n = shortio_allow(iov[i].iov_len)) == 0) {
		errno = EAGAIN;
		return -1;
	}
	return real_write(fd, iov[i].iov_base, n);
}
