/* net.c: non-blocking descriptor I/O shared by the daemons */
#include <errno.h>
#include <unistd.h>

#include "net.h"

size_t
net_write(int fd, const void *p, size_t n, int *err)
{
	const char	*s = p;
	size_t		 off = 0;
	ssize_t		 w;

	*err = 0;
	while (off < n) {
		w = write(fd, s + off, n - off);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		*err = w == 0 ? EPIPE : errno;
		break;
	}
	return off;
}

int
net_drain(int fd)
{
	char	 buf[4096];
	ssize_t	 n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0 || (n == -1 && errno == EINTR))
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
}
